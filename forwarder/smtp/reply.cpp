#include "forwarder/smtp/reply.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <sstream>

namespace postern::smtp {

namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string reply::text() const {
  std::string out;
  for (const auto& l : lines) out += (out.empty() ? "" : "; ") + l;
  return out;
}

std::string reply::one_line() const { return std::to_string(code) + " " + text(); }

std::string reply::wire() const {
  std::string out;
  const std::string code_text = std::to_string(code);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    out += code_text;
    out += i + 1 < lines.size() ? '-' : ' ';
    out += lines[i];
    out += "\r\n";
  }
  if (lines.empty()) out = code_text + " \r\n";
  return out;
}

reply make_reply(int code, std::string_view enhanced, std::string_view text) {
  reply r;
  r.code = code;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string line(text.substr(start, end - start));
    r.lines.push_back(enhanced.empty() ? line : std::string(enhanced) + " " + line);
    start = end + 1;
  }
  return r;
}

reply_parser::status reply_parser::feed(std::string_view line) {
  // "NNN text", "NNN-text" or a bare "NNN"; all lines of a reply carry the same code.
  int code = 0;
  auto [end, ec] =
      std::from_chars(line.data(), line.data() + std::min<std::size_t>(3, line.size()), code);
  const bool well_formed = line.size() >= 3 && ec == std::errc() && end == line.data() + 3 &&
                           code >= 200 && code <= 599 &&
                           (line.size() == 3 || line[3] == ' ' || line[3] == '-');
  if (!well_formed || (current_.code != 0 && code != current_.code) ||
      current_.lines.size() >= max_lines) {
    error_ = well_formed ? "inconsistent multi-line reply" : "malformed reply line";
    current_ = {};
    return status::malformed;
  }
  current_.code = code;
  current_.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
  return line.size() > 3 && line[3] == '-' ? status::more : status::done;
}

reply reply_parser::take() {
  reply r = std::move(current_);
  current_ = {};
  return r;
}

ehlo_capabilities parse_ehlo(const reply& r) {
  ehlo_capabilities caps;
  // The first line is the greeting name; each further line is "KEYWORD params".
  for (std::size_t i = 1; i < r.lines.size(); ++i) {
    std::istringstream words(r.lines[i]);
    std::string keyword;
    words >> keyword;
    keyword = upper(keyword);
    if (keyword == "PIPELINING")
      caps.pipelining = true;
    else if (keyword == "8BITMIME")
      caps.eightbitmime = true;
    else if (keyword == "SMTPUTF8")
      caps.smtputf8 = true;
    else if (keyword == "STARTTLS")
      caps.starttls = true;
    else if (keyword == "ENHANCEDSTATUSCODES")
      caps.enhanced_status = true;
    else if (keyword == "DSN")
      caps.dsn = true;
    else if (keyword == "SIZE") {
      caps.size = true;
      std::string number;
      words >> number;
      std::from_chars(number.data(), number.data() + number.size(), caps.max_size);
    } else if (keyword == "AUTH" || keyword.rfind("AUTH=", 0) == 0) {
      // "AUTH=PLAIN LOGIN" is the pre-standard spelling some servers still send.
      std::string mechanism = keyword.size() > 5 ? keyword.substr(5) : "";
      do {
        mechanism = upper(mechanism);
        if (!mechanism.empty() &&
            std::find(caps.auth.begin(), caps.auth.end(), mechanism) == caps.auth.end())
          caps.auth.push_back(mechanism);
      } while (words >> mechanism);
    }
  }
  return caps;
}

}  // namespace postern::smtp
