#include "forwarder/smtp/message_header.hpp"

#include <algorithm>
#include <cctype>

namespace postern::smtp {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

/// Removes comments "(...)" (nested, with quoted-pairs) outside quoted strings.
std::string strip_comments(std::string_view in) {
  std::string out;
  int depth = 0;
  bool quoted = false;
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '\\' && i + 1 < in.size()) {
      if (depth == 0) {
        out += c;
        out += in[i + 1];
      }
      ++i;
      continue;
    }
    if (depth == 0 && c == '"') quoted = !quoted;
    if (!quoted && c == '(') {
      ++depth;
      continue;
    }
    if (!quoted && depth > 0 && c == ')') {
      --depth;
      out += depth == 0 ? " " : "";
      continue;
    }
    if (depth == 0) out += c;
  }
  return out;
}

/// One mailbox: "Name <a@b>" or "a@b"; "" when it holds no address.
std::string mailbox_address(std::string_view text) {
  bool quoted = false;
  std::size_t open = std::string_view::npos;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
      continue;
    }
    if (text[i] == '"') quoted = !quoted;
    if (!quoted && text[i] == '<') open = i;
  }
  if (open != std::string_view::npos) {
    auto close = text.find('>', open);
    text = text.substr(open + 1, close == std::string_view::npos ? text.npos : close - open - 1);
  }
  std::string out;
  for (char c : text)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') out += c;
  return out.find('@') == std::string::npos ? "" : out;
}

}  // namespace

std::string header_field::value() const {
  auto colon = raw.find(':');
  std::string out;
  if (colon == std::string::npos) return out;
  for (std::size_t i = colon + 1; i < raw.size(); ++i)
    if (raw[i] != '\r' && raw[i] != '\n') out += raw[i];
  return trim(out);
}

header_block header_block::parse(std::string_view text) {
  header_block block;
  if (auto nl = text.find('\n'); nl != std::string_view::npos && (nl == 0 || text[nl - 1] != '\r'))
    block.eol_ = "\n";
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    std::size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
    std::string_view line = text.substr(pos, end - pos);
    const bool continuation = !line.empty() && (line[0] == ' ' || line[0] == '\t');
    if (continuation && !block.fields_.empty()) {
      block.fields_.back().raw += line;
    } else {
      header_field f;
      auto colon = line.find(':');
      // The obsolete syntax of RFC 5322 §4.5 allows space before the colon ("From :"); a
      // reader that skipped such a field would check one From: while the recipient shows
      // another.
      std::string_view name = line.substr(0, colon == std::string_view::npos ? 0 : colon);
      while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
      if (!name.empty() &&
          std::all_of(name.begin(), name.end(), [](unsigned char c) { return c > 32 && c < 127; }))
        f.name = name;
      f.raw = line;
      block.fields_.push_back(std::move(f));
    }
    pos = end;
  }
  return block;
}

const header_field* header_block::find(std::string_view name) const {
  for (const auto& f : fields_)
    if (iequals(f.name, name)) return &f;
  return nullptr;
}

std::vector<std::string> header_block::values(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& f : fields_)
    if (iequals(f.name, name)) out.push_back(f.value());
  return out;
}

std::size_t header_block::remove(std::string_view name) {
  auto before = fields_.size();
  std::erase_if(fields_, [&](const header_field& f) { return iequals(f.name, name); });
  return before - fields_.size();
}

void header_block::add(std::string_view name, std::string_view value) {
  header_field f;
  f.name = name;
  f.raw = std::string(name) + ": " + std::string(value) + eol_;
  fields_.push_back(std::move(f));
}

std::string header_block::serialize() const {
  std::string out;
  for (const auto& f : fields_) out += f.raw;
  return out;
}

std::optional<std::size_t> header_end(std::string_view text) {
  if (text.starts_with("\r\n")) return 2;
  if (text.starts_with("\n")) return 1;
  for (std::size_t pos = text.find('\n'); pos != std::string_view::npos;
       pos = text.find('\n', pos + 1)) {
    if (text.compare(pos + 1, 2, "\r\n") == 0) return pos + 3;
    if (text.compare(pos + 1, 1, "\n") == 0) return pos + 2;
  }
  return std::nullopt;
}

std::vector<std::string> parse_address_list(std::string_view value) {
  std::string text = strip_comments(value);
  std::vector<std::string> out;
  std::string current;
  bool quoted = false;
  bool angled = false;
  auto flush = [&] {
    std::string a = mailbox_address(current);
    if (!a.empty()) out.push_back(a);
    current.clear();
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\' && i + 1 < text.size()) {
      current += c;
      current += text[++i];
      continue;
    }
    if (c == '"' && !angled) quoted = !quoted;
    if (!quoted) {
      if (c == '<') angled = true;
      if (c == '>') angled = false;
      // "group: a@b, c@d;" - the group name is dropped, its members kept.
      if (!angled && c == ':') {
        current.clear();
        continue;
      }
      if (!angled && (c == ',' || c == ';')) {
        flush();
        continue;
      }
    }
    current += c;
  }
  flush();
  return out;
}

}  // namespace postern::smtp
