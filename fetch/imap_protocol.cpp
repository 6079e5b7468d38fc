#include "imap_protocol.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace postern::fetch {

namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) ==
                  std::toupper(static_cast<unsigned char>(y));
         });
}

/// ATOM-CHAR of RFC 3501 §9: anything but CTL, SP and "(){%*\"\\]".
bool atom_char(unsigned char c) {
  return c > ' ' && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '%' && c != '*' &&
         c != '"' && c != '\\' && c != ']';
}

template <class T>
std::optional<T> to_number(std::string_view s) {
  T v{};
  if (s.empty()) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

/// A cursor over one response.
class scanner {
 public:
  explicit scanner(std::string_view s) : s_(s) {}
  [[nodiscard]] bool at_end() const { return pos_ >= s_.size(); }
  [[nodiscard]] char peek() const { return at_end() ? '\0' : s_[pos_]; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  void spaces() {
    while (peek() == ' ') ++pos_;
  }
  std::string_view rest() {
    std::string_view r = s_.substr(std::min(pos_, s_.size()));
    pos_ = s_.size();
    return r;
  }
  /// Characters up to a space or a closing parenthesis (atoms, numbers, flags such as \Seen).
  std::string_view word() {
    const std::size_t start = pos_;
    while (!at_end() && peek() != ' ' && peek() != ')' && peek() != '(' && peek() != '\r' &&
           peek() != '\n')
      ++pos_;
    return s_.substr(start, pos_ - start);
  }
  /// A FETCH item name: "UID", "BODY[]", "BODY[HEADER.FIELDS (A B)]<0>".
  std::string_view item_name() {
    const std::size_t start = pos_;
    int brackets = 0;
    while (!at_end()) {
      const char c = peek();
      if (brackets == 0 && (c == ' ' || c == '(' || c == ')')) break;
      if (c == '[') ++brackets;
      if (c == ']') --brackets;
      ++pos_;
    }
    return s_.substr(start, pos_ - start);
  }
  template <class T>
  std::optional<T> number() {
    return to_number<T>(word());
  }
  /// A quoted string or a literal.
  std::optional<std::string> string_value() {
    if (eat('"')) {
      std::string out;
      while (!at_end()) {
        char c = s_[pos_++];
        if (c == '"') return out;
        if (c == '\\') {
          if (at_end()) return std::nullopt;
          c = s_[pos_++];
        }
        out += c;
      }
      return std::nullopt;
    }
    eat('~');  // literal8 (RFC 3516)
    if (!eat('{')) return std::nullopt;
    const std::size_t close = s_.find('}', pos_);
    if (close == std::string_view::npos) return std::nullopt;
    auto n = to_number<std::uint64_t>(s_.substr(pos_, close - pos_));
    pos_ = close + 1;
    if (!n || !eat('\r') || !eat('\n') || s_.size() - pos_ < *n) return std::nullopt;
    std::string out(s_.substr(pos_, *n));
    pos_ += *n;
    return out;
  }
  /// NIL or a string; nullopt for NIL and for a malformed value (`ok` tells them apart).
  std::optional<std::string> nstring(bool& ok) {
    if (peek() == 'N' || peek() == 'n') {
      ok = iequals(word(), "NIL");
      return std::nullopt;
    }
    auto v = string_value();
    ok = v.has_value();
    return v;
  }
  /// Skips any value: atom, number, string, literal, NIL or a parenthesised list.
  bool skip_value(int depth = 0) {
    if (depth > 32) return false;
    if (eat('(')) {
      for (;;) {
        spaces();
        if (eat(')')) return true;
        if (at_end() || !skip_value(depth + 1)) return false;
      }
    }
    if (peek() == '"' || peek() == '{' || peek() == '~') return string_value().has_value();
    return !item_name().empty();
  }
  /// A parenthesised list of words (FLAGS).
  std::optional<std::vector<std::string>> word_list() {
    if (!eat('(')) return std::nullopt;
    std::vector<std::string> out;
    for (;;) {
      spaces();
      if (eat(')')) return out;
      auto w = word();
      if (w.empty()) return std::nullopt;
      out.emplace_back(w);
    }
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
};

imap_status status_of(std::string_view word) {
  if (iequals(word, "OK")) return imap_status::ok;
  if (iequals(word, "NO")) return imap_status::no;
  if (iequals(word, "BAD")) return imap_status::bad;
  if (iequals(word, "PREAUTH")) return imap_status::preauth;
  if (iequals(word, "BYE")) return imap_status::bye;
  return imap_status::none;
}

/// resp-text: an optional "[CODE arg]" and the human text.
bool parse_resp_text(scanner& s, imap_response& r) {
  s.spaces();
  if (s.eat('[')) {
    const std::string_view inside = s.rest();
    // The code's argument may hold brackets of its own ("[PERMANENTFLAGS (\Seen \*)]" has
    // none, but "[BADCHARSET (x)]" and atoms with "]" inside a quoted text could): the code
    // ends at the last "]" before the text, found from the left at depth zero.
    std::size_t depth = 0, end = std::string_view::npos;
    for (std::size_t i = 0; i < inside.size() && end == std::string_view::npos; ++i) {
      if (inside[i] == '(') ++depth;
      if (inside[i] == ')' && depth > 0) --depth;
      if (inside[i] == ']' && depth == 0) end = i;
    }
    if (end == std::string_view::npos) return false;
    const std::string_view code = inside.substr(0, end);
    const auto space = code.find(' ');
    r.code = upper(code.substr(0, space));
    if (space != std::string_view::npos) r.code_arg = std::string(code.substr(space + 1));
    std::string_view text = inside.substr(end + 1);
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    r.text = std::string(text);
    return true;
  }
  r.text = std::string(s.rest());
  return true;
}

bool parse_fetch_items(scanner& s, imap_response& r, std::string& error) {
  if (!s.eat('(')) {
    error = "FETCH without its parenthesised items";
    return false;
  }
  for (;;) {
    s.spaces();
    if (s.eat(')')) return true;
    const std::string name = upper(s.item_name());
    if (name.empty()) {
      error = "malformed FETCH item";
      return false;
    }
    s.spaces();
    bool ok = true;
    if (name == "UID") {
      r.uid = s.number<std::uint32_t>();
      ok = r.uid && *r.uid > 0;
    } else if (name == "RFC822.SIZE") {
      r.size = s.number<std::uint64_t>();
      ok = r.size.has_value();
    } else if (name == "FLAGS") {
      auto flags = s.word_list();
      ok = flags.has_value();
      if (flags) r.flags = std::move(*flags);
    } else if (name == "MODSEQ") {
      ok = s.eat('(') && (r.modseq = s.number<std::uint64_t>()) && s.eat(')');
    } else if (name == "BODY[]" || name == "BODY[]<0>" || name == "BINARY[]") {
      r.body = true;
      s.nstring(ok);  // the client streamed the octets and left an empty literal
    } else if (name == "BODY[HEADER]") {
      r.header = s.nstring(ok);
    } else {
      ok = s.skip_value();
    }
    if (!ok) {
      error = "malformed FETCH item " + name;
      return false;
    }
  }
}

bool parse_untagged_data(scanner& s, imap_response& r, std::string& error) {
  const std::string_view first = s.word();
  if (auto n = to_number<std::uint32_t>(first)) {
    r.number = *n;
    s.spaces();
    r.name = upper(s.word());
    s.spaces();
    if (r.name == "FETCH") return parse_fetch_items(s, r, error);
    if (r.name.empty()) {
      error = "a number with no response name";
      return false;
    }
    s.rest();
    return true;
  }
  r.name = upper(first);
  r.status = status_of(first);
  if (r.status != imap_status::none) {
    if (parse_resp_text(s, r)) return true;
    error = "unterminated response code";
    return false;
  }
  if (r.name == "CAPABILITY" || r.name == "ENABLED" || r.name == "SEARCH") {
    for (s.spaces(); !s.at_end(); s.spaces()) {
      if (s.peek() == '(') {  // SEARCH's "(MODSEQ n)" (RFC 7162)
        if (!s.skip_value()) break;
        continue;
      }
      r.words.push_back(upper(s.word()));
      if (r.words.back().empty()) {
        error = "malformed " + r.name + " response";
        return false;
      }
    }
    return true;
  }
  if (r.name == "VANISHED") {
    s.spaces();
    if (s.peek() == '(') {
      auto tag = s.word_list();
      r.earlier = tag && tag->size() == 1 && iequals(tag->front(), "EARLIER");
      s.spaces();
    }
    r.uid_set = std::string(s.word());
    if (!parse_uid_set(r.uid_set)) {
      error = "malformed VANISHED set";
      return false;
    }
    return true;
  }
  s.rest();  // FLAGS, LIST, STATUS, ...: not used
  return true;
}

}  // namespace

const char* to_string(imap_status s) {
  switch (s) {
    case imap_status::none: return "none";
    case imap_status::ok: return "OK";
    case imap_status::no: return "NO";
    case imap_status::bad: return "BAD";
    case imap_status::preauth: return "PREAUTH";
    case imap_status::bye: return "BYE";
  }
  return "?";
}

std::optional<imap_response> parse_imap_response(std::string_view wire, std::string& error) {
  scanner s(wire);
  imap_response r;
  if (s.eat('+')) {
    r.what = imap_response::kind::continuation;
    s.spaces();
    r.text = std::string(s.rest());
    return r;
  }
  if (s.eat('*')) {
    if (!s.eat(' ')) {
      error = "no space after \"*\"";
      return std::nullopt;
    }
    if (!parse_untagged_data(s, r, error)) return std::nullopt;
    return r;
  }
  r.what = imap_response::kind::tagged;
  r.tag = std::string(s.word());
  if (r.tag.empty() || !s.eat(' ')) {
    error = "neither tagged nor untagged";
    return std::nullopt;
  }
  const std::string_view word = s.word();
  r.name = upper(word);
  r.status = status_of(word);
  if (r.status != imap_status::ok && r.status != imap_status::no && r.status != imap_status::bad) {
    error = "a tagged response that is not OK, NO or BAD";
    return std::nullopt;
  }
  if (!parse_resp_text(s, r)) {
    error = "unterminated response code";
    return std::nullopt;
  }
  return r;
}

std::optional<std::uint64_t> trailing_literal(std::string_view line) {
  if (line.empty() || line.back() != '}') return std::nullopt;
  const auto open = line.rfind('{');
  if (open == std::string_view::npos) return std::nullopt;
  std::string_view digits = line.substr(open + 1, line.size() - open - 2);
  if (!digits.empty() && digits.back() == '+') digits.remove_suffix(1);
  if (digits.empty() || digits.size() > 19) return std::nullopt;
  return to_number<std::uint64_t>(digits);
}

bool announces_body(std::string_view line) {
  if (!line.starts_with("* ") || !trailing_literal(line)) return false;
  std::string_view head = line.substr(0, line.rfind('{'));
  while (!head.empty() && head.back() == ' ') head.remove_suffix(1);
  if (!head.empty() && head.back() == '~') head.remove_suffix(1);
  for (std::string_view item : {"BODY[]", "BODY[]<0>", "BINARY[]"})
    if (head.size() >= item.size() && iequals(head.substr(head.size() - item.size()), item))
      return upper(head).find(" FETCH (") != std::string::npos;
  return false;
}

std::optional<std::string> imap_astring(std::string_view s) {
  if (!s.empty() && std::all_of(s.begin(), s.end(),
                                [](char c) { return atom_char(static_cast<unsigned char>(c)); }))
    return std::string(s);
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == 0 || c == '\r' || c == '\n' || c >= 0x80) return std::nullopt;
    if (c == '"' || c == '\\') out += '\\';
    out += static_cast<char>(c);
  }
  return out + "\"";
}

std::string imap_folder_name(std::string_view utf8) {
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
  std::string out;
  std::u16string run;  // UTF-16 units of a run of non-printable-ASCII characters
  const auto flush = [&] {
    if (run.empty()) return;
    out += '&';
    std::uint32_t bits = 0;
    int nbits = 0;
    for (char16_t u : run) {
      bits = (bits << 16) | u;
      nbits += 16;
      while (nbits >= 6) {
        nbits -= 6;
        out += b64[(bits >> nbits) & 63];
      }
    }
    if (nbits > 0) out += b64[(bits << (6 - nbits)) & 63];
    out += '-';
    run.clear();
  };
  for (std::size_t i = 0; i < utf8.size();) {
    const auto c = static_cast<unsigned char>(utf8[i]);
    if (c >= 0x20 && c < 0x7f) {
      flush();
      out += static_cast<char>(c);
      if (c == '&') out += '-';
      ++i;
      continue;
    }
    // Decode one UTF-8 sequence (an invalid octet is taken as Latin-1).
    std::uint32_t cp = c;
    int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
    if (extra > 0 && i + extra < utf8.size()) {
      cp = c & (0x3f >> extra);
      for (int k = 1; k <= extra; ++k)
        cp = (cp << 6) | (static_cast<unsigned char>(utf8[i + k]) & 0x3f);
    } else {
      extra = 0;
    }
    i += 1 + extra;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      run += static_cast<char16_t>(0xd800 + (cp >> 10));
      run += static_cast<char16_t>(0xdc00 + (cp & 0x3ff));
    } else {
      run += static_cast<char16_t>(cp);
    }
  }
  flush();
  return out;
}

std::string imap_uid_set(const std::vector<std::uint32_t>& sorted_uids) {
  std::string out;
  for (std::size_t i = 0; i < sorted_uids.size();) {
    std::size_t j = i;
    while (j + 1 < sorted_uids.size() && sorted_uids[j + 1] == sorted_uids[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(sorted_uids[i]);
    if (j > i) out += ':' + std::to_string(sorted_uids[j]);
    i = j + 1;
  }
  return out;
}

std::optional<std::vector<std::uint32_t>> parse_uid_set(std::string_view set, std::size_t max) {
  std::vector<std::uint32_t> out;
  if (set.empty()) return std::nullopt;
  while (!set.empty()) {
    const auto comma = set.find(',');
    const std::string_view part = set.substr(0, comma);
    set = comma == std::string_view::npos ? std::string_view{} : set.substr(comma + 1);
    if (comma != std::string_view::npos && set.empty()) return std::nullopt;
    const auto colon = part.find(':');
    auto lo = to_number<std::uint32_t>(part.substr(0, colon));
    auto hi =
        colon == std::string_view::npos ? lo : to_number<std::uint32_t>(part.substr(colon + 1));
    if (!lo || !hi || *lo == 0 || *hi == 0) return std::nullopt;
    if (*lo > *hi) std::swap(*lo, *hi);
    if (out.size() + (*hi - *lo) >= max) return std::nullopt;
    for (std::uint64_t u = *lo; u <= *hi; ++u) out.push_back(static_cast<std::uint32_t>(u));
  }
  return out;
}

bool imap_capabilities::has_auth(std::string_view mech) const {
  return std::any_of(auth.begin(), auth.end(), [&](const std::string& m) { return m == mech; });
}

imap_capabilities parse_imap_capabilities(const std::vector<std::string>& words) {
  imap_capabilities c;
  for (const std::string& w : words) {
    if (w == "IMAP4REV1")
      c.imap4rev1 = true;
    else if (w == "STARTTLS")
      c.starttls = true;
    else if (w == "LOGINDISABLED")
      c.login_disabled = true;
    else if (w == "UIDPLUS")
      c.uidplus = true;
    else if (w == "MOVE")
      c.move = true;
    else if (w == "IDLE")
      c.idle = true;
    else if (w == "CONDSTORE")
      c.condstore = true;
    else if (w == "QRESYNC")
      c.qresync = true;
    else if (w == "LITERAL+")
      c.literal_plus = true;
    else if (w == "ENABLE")
      c.enable = true;
    else if (w == "SASL-IR")
      c.sasl_ir = true;
    else if (w.starts_with("AUTH="))
      c.auth.push_back(w.substr(5));
  }
  return c;
}

std::vector<std::string> capability_words(std::string_view code_arg) {
  std::vector<std::string> out;
  scanner s(code_arg);
  for (s.spaces(); !s.at_end(); s.spaces()) {
    auto w = s.word();
    if (w.empty()) break;
    out.push_back(upper(w));
  }
  return out;
}

}  // namespace postern::fetch
