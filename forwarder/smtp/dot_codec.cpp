#include "forwarder/smtp/dot_codec.hpp"

#include <cstring>

namespace postern::smtp {

std::size_t dot_decoder::feed(const char* data, std::size_t len, std::string& out) {
  const std::size_t before = out.size();
  std::size_t i = 0;
  while (i < len && state_ != state::done) {
    switch (state_) {
      case state::line_start:
        if (data[i] == '.') {
          if (after_bare_lf_) ambiguous_dot_ = true;
          state_ = state::dot;
          ++i;
        } else {
          state_ = state::body;
        }
        break;
      case state::dot:
        if (data[i] == '\r') {
          state_ = state::dot_cr;
          ++i;
        } else {
          // A stuffed line: the leading dot is dropped, the rest is ordinary data.
          if (data[i] == '\n') ambiguous_dot_ = true;
          state_ = state::body;
        }
        break;
      case state::dot_cr:
        if (data[i] == '\n' && !after_bare_lf_) {
          state_ = state::done;
          ++i;
        } else {
          // ".\rX": an unstuffed CR followed by more of the line.
          bare_cr_ = find_bare_cr_;
          out += '\r';
          last_cr_ = true;
          state_ = state::body;
        }
        break;
      case state::body: {
        if (find_bare_cr_ && last_cr_ && data[i] != '\n') bare_cr_ = true;  // CR ended a chunk
        const char* nl = static_cast<const char*>(std::memchr(data + i, '\n', len - i));
        std::size_t end = nl ? static_cast<std::size_t>(nl - data) + 1 : len;
        // Every CR of the line but one right before its LF (or at the chunk's end, decided
        // with the next chunk) is bare.
        for (const char* cr = static_cast<const char*>(std::memchr(data + i, '\r', end - i));
             find_bare_cr_ && cr && !bare_cr_;
             cr = static_cast<const char*>(
                 std::memchr(cr + 1, '\r', static_cast<std::size_t>(data + end - cr - 1))))
          if (cr + 1 < data + end && cr[1] != '\n') bare_cr_ = true;
        out.append(data + i, end - i);
        if (nl) {
          bool crlf = nl > data + i ? nl[-1] == '\r' : last_cr_;
          after_bare_lf_ = !crlf;
          state_ = state::line_start;
        }
        last_cr_ = data[end - 1] == '\r';
        i = end;
        break;
      }
      case state::done: break;
    }
  }
  size_ += out.size() - before;
  return i;
}

void dot_encoder::encode(const char* data, std::size_t len, std::string& out) {
  std::size_t i = 0;
  while (i < len) {
    if (line_start_ && data[i] == '.') out += '.';
    const char* nl = static_cast<const char*>(std::memchr(data + i, '\n', len - i));
    std::size_t end = nl ? static_cast<std::size_t>(nl - data) + 1 : len;
    out.append(data + i, end - i);
    line_start_ = nl != nullptr;
    if (nl) crlf_ended_ = nl > data + i ? nl[-1] == '\r' : last_cr_;
    last_cr_ = data[end - 1] == '\r';
    i = end;
  }
}

void dot_encoder::finish(std::string& out) {
  // The marker must follow a CRLF, or a strict server would read it as data.
  if (!line_start_)
    out += last_cr_ ? "\n" : "\r\n";
  else if (!crlf_ended_)
    out += "\r\n";
  out += ".\r\n";
  line_start_ = true;
  crlf_ended_ = true;
  last_cr_ = false;
}

std::optional<std::string_view> unstuff_line(std::string_view line) {
  if (line == ".") return std::nullopt;
  return line.starts_with("..") ? line.substr(1) : line;
}

}  // namespace postern::smtp
