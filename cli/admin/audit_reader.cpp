#include "cli/admin/audit_reader.hpp"

#include <charconv>
#include <ctime>

namespace postern::admin {

namespace {

/// A cursor over one line, with the error of the first thing that did not fit.
class reader {
 public:
  explicit reader(std::string_view text) : s_(text) {}

  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r' || s_[i_] == '\n'))
      ++i_;
  }
  bool eat(char c) {
    skip_space();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  [[nodiscard]] bool at_end() {
    skip_space();
    return i_ == s_.size();
  }
  [[nodiscard]] char peek() {
    skip_space();
    return i_ < s_.size() ? s_[i_] : '\0';
  }
  bool fail(std::string what) {
    if (error_.empty()) error_ = "column " + std::to_string(i_ + 1) + ": " + std::move(what);
    return false;
  }
  [[nodiscard]] const std::string& error() const { return error_; }

  bool string(std::string& out) {
    if (!eat('"')) return fail("expected a string");
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return fail("a control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) break;
      const char e = s_[i_++];
      switch (e) {
        case '"':
        case '\\':
        case '/': out += e; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u':
          if (!unicode(out)) return false;
          break;
        default: return fail(std::string("unknown escape \\") + e);
      }
    }
    return fail("the string does not end");
  }

  bool number(std::int64_t& out) {
    skip_space();
    const char* begin = s_.data() + i_;
    auto [end, ec] = std::from_chars(begin, s_.data() + s_.size(), out);
    if (ec != std::errc()) return fail("expected a number");
    i_ += static_cast<std::size_t>(end - begin);
    if (i_ < s_.size() && (s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E'))
      return fail("expected a whole number");
    return true;
  }

  bool word(std::string_view w) {
    skip_space();
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }

 private:
  bool hex4(unsigned& out) {
    if (i_ + 4 > s_.size()) return fail("a short \\u escape");
    out = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[i_++];
      out <<= 4;
      if (h >= '0' && h <= '9')
        out |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f')
        out |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        out |= static_cast<unsigned>(h - 'A' + 10);
      else
        return fail("a bad \\u escape");
    }
    return true;
  }

  bool unicode(std::string& out) {
    unsigned cp = 0;
    if (!hex4(cp)) return false;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      unsigned low = 0;
      if (s_.substr(i_, 2) != "\\u") return fail("a lone surrogate");
      i_ += 2;
      if (!hex4(low) || low < 0xDC00 || low > 0xDFFF) return fail("a lone surrogate");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
      return fail("a lone surrogate");
    }
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return true;
  }

  std::string_view s_;
  std::size_t i_ = 0;
  std::string error_;
};

bool value(reader& in, audit_value& out) {
  const char c = in.peek();
  if (c == '"') {
    std::string s;
    if (!in.string(s)) return false;
    out = std::move(s);
    return true;
  }
  if (c == '[') {
    in.eat('[');
    std::vector<std::string> list;
    if (!in.eat(']')) {
      do {
        std::string s;
        if (!in.string(s)) return false;
        list.push_back(std::move(s));
      } while (in.eat(','));
      if (!in.eat(']')) return in.fail("expected , or ] in a list");
    }
    out = std::move(list);
    return true;
  }
  if (in.word("true") || in.word("false")) {
    out = c == 't';
    return true;
  }
  std::int64_t n = 0;
  if (!in.number(n)) return false;
  out = n;
  return true;
}

const std::string* text(const audit_fields& line, std::string_view key) {
  auto it = line.find(key);
  return it == line.end() ? nullptr : std::get_if<std::string>(&it->second);
}

/// A string field that must be there; false and `error` when it is not.
bool need(const audit_fields& line, std::string_view key, std::string& out, std::string& error) {
  if (const std::string* v = text(line, key)) {
    out = *v;
    return true;
  }
  error = "no \"" + std::string(key) + "\" string";
  return false;
}

bool need_time(const audit_fields& line, std::int64_t& out, std::string& error) {
  std::string t;
  if (!need(line, "time", t, error)) return false;
  auto parsed = parse_audit_time(t);
  if (!parsed) {
    error = "\"time\": \"" + t + "\" is not a UTC timestamp";
    return false;
  }
  out = *parsed;
  return true;
}

}  // namespace

std::optional<audit_fields> parse_audit_line(std::string_view line, std::string& error) {
  reader in(line);
  audit_fields out;
  if (!in.eat('{')) {
    in.fail("expected {");
    error = in.error();
    return std::nullopt;
  }
  bool ok = true;
  if (!in.eat('}')) {
    do {
      std::string key;
      audit_value v;
      ok = in.string(key) && (in.eat(':') || in.fail("expected :")) && value(in, v);
      if (!ok) break;
      out.insert_or_assign(std::move(key), std::move(v));
    } while (in.eat(','));
    ok = ok && (in.eat('}') || in.fail("expected , or }"));
  }
  ok = ok && (in.at_end() || in.fail("more after the object"));
  if (!ok) {
    error = in.error();
    return std::nullopt;
  }
  return out;
}

std::optional<std::int64_t> parse_audit_time(std::string_view text) {
  std::tm tm{};
  int ms = 0;
  if (text.size() != 24 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
      text[16] != ':' || text[19] != '.' || text[23] != 'Z')
    return std::nullopt;
  auto num = [&](std::size_t at, std::size_t len, int& out) {
    auto [end, ec] = std::from_chars(text.data() + at, text.data() + at + len, out);
    return ec == std::errc() && end == text.data() + at + len;
  };
  if (!num(0, 4, tm.tm_year) || !num(5, 2, tm.tm_mon) || !num(8, 2, tm.tm_mday) ||
      !num(11, 2, tm.tm_hour) || !num(14, 2, tm.tm_min) || !num(17, 2, tm.tm_sec) ||
      !num(20, 3, ms))
    return std::nullopt;
  if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<std::int64_t>(::timegm(&tm));
}

std::optional<submission> submission_of(const audit_fields& line, std::string& error) {
  submission s;
  const std::string* id = text(line, "message_id");
  if (!id || id->empty()) return std::nullopt;  // refused before any data: nothing was sent
  s.message_id = *id;
  if (!need_time(line, s.time, error) || !need(line, "mailbox", s.mailbox, error) ||
      !need(line, "outcome", s.outcome, error) || !need(line, "reply", s.reply, error))
    return std::nullopt;
  auto to = line.find("recipients");
  const auto* list =
      to == line.end() ? nullptr : std::get_if<std::vector<std::string>>(&to->second);
  if (!list) {
    error = "no \"recipients\" list";
    return std::nullopt;
  }
  s.recipients = *list;
  if (auto u = line.find("uncertain"); u != line.end()) {
    const bool* b = std::get_if<bool>(&u->second);
    if (!b) {
      error = "\"uncertain\" is not true or false";
      return std::nullopt;
    }
    s.uncertain = *b;
  }
  return s;
}

std::optional<fetch::pec_kind> receipt_kind_of(std::string_view name) {
  static const std::pair<const char*, fetch::pec_kind> kinds[] = {
      {"accettazione", fetch::pec_kind::accettazione},
      {"non-accettazione", fetch::pec_kind::non_accettazione},
      {"presa-in-carico", fetch::pec_kind::presa_in_carico},
      {"avvenuta-consegna", fetch::pec_kind::avvenuta_consegna},
      {"errore-consegna", fetch::pec_kind::errore_consegna},
      {"preavviso-errore-consegna", fetch::pec_kind::preavviso_errore_consegna},
      {"rilevazione-virus", fetch::pec_kind::rilevazione_virus}};
  for (const auto& [text, kind] : kinds)
    if (name == text) return kind;
  return std::nullopt;
}

std::optional<receipt> receipt_of(const audit_fields& line, std::string& error) {
  const std::string* pec = text(line, "pec");
  const std::string* ref = text(line, "ref_message_id");
  if (!pec || !ref || ref->empty()) return std::nullopt;
  auto kind = receipt_kind_of(*pec);
  if (!kind) return std::nullopt;  // a message, an envelope
  receipt r;
  r.kind = *kind;
  r.ref_message_id = *ref;
  if (!need_time(line, r.time, error)) return std::nullopt;
  if (const std::string* v = text(line, "consegna")) r.recipient = *v;
  if (const std::string* v = text(line, "mailbox")) r.mailbox = *v;
  if (const std::string* v = text(line, "identificativo")) r.provider_id = *v;
  const std::string* errore = text(line, "errore");
  const std::string* esteso = text(line, "errore_esteso");
  if (esteso && !esteso->empty())
    r.error = *esteso;
  else if (errore && !errore->empty() && *errore != "nessuno")
    r.error = *errore;
  return r;
}

}  // namespace postern::admin
