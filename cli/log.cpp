#include "log.hpp"

#include <unistd.h>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <random>

namespace postern::log {

const char* to_string(level l) {
  switch (l) {
    case level::error: return "error";
    case level::warn: return "warn";
    case level::info: return "info";
    case level::debug: return "debug";
    case level::trace: return "trace";
  }
  return "?";
}

namespace {

void write_stderr(std::string_view line) {
  // One write per line so concurrent lines never interleave.
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v)
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20 ||
        static_cast<unsigned char>(c) >= 0x7f)
      return true;
  return false;
}

/// Length of the well-formed UTF-8 sequence at the start of `v` (RFC 3629: no overlong
/// forms, no surrogates, nothing above U+10FFFF), or 0 when it is not one.
std::size_t utf8_sequence(std::string_view v) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(v[i]); };
  const unsigned char b0 = byte(0);
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    len = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    len = 3;
    if (b0 == 0xe0) lo = 0xa0;
    if (b0 == 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    len = 4;
    if (b0 == 0xf0) lo = 0x90;
    if (b0 == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (v.size() < len || byte(1) < lo || byte(1) > hi) return 0;
  for (std::size_t i = 2; i < len; ++i)
    if (byte(i) < 0x80 || byte(i) > 0xbf) return 0;
  return len;
}

}  // namespace

void append_quoted(std::string& out, std::string_view v) {
  out += '"';
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x80) {
      if (std::size_t len = utf8_sequence(v.substr(i)); len > 0) {
        out.append(v.data() + i, len);
        i += len - 1;
      } else {
        out += "\\ufffd";
      }
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\u%04x", u);
      out += hex;
    } else {
      out += c;
    }
  }
  out += '"';
}

std::string utc_timestamp() {
  auto now = std::chrono::system_clock::now();
  auto t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms.count()));
  return text;
}

logger::logger() : timestamps_(std::getenv("JOURNAL_STREAM") == nullptr), sink_(write_stderr) {}

logger& logger::instance() {
  static logger the_logger;
  return the_logger;
}

void logger::set_sink(sink s) {
  std::lock_guard lock(mutex_);
  sink_ = s ? std::move(s) : sink(write_stderr);
}

std::string logger::format_line(level l, std::string_view event,
                                std::initializer_list<field> fields) const {
  std::string out;
  out.reserve(160);
  if (format_ == format::json) {
    out += '{';
    if (timestamps_) {
      out += "\"ts\":";
      append_quoted(out, utc_timestamp());
      out += ',';
    }
    out += "\"level\":\"";
    out += to_string(l);
    out += "\",\"event\":";
    append_quoted(out, event);
    for (const auto& f : fields) {
      out += ',';
      append_quoted(out, f.key);
      out += ':';
      if (f.number)
        out += f.value;
      else
        append_quoted(out, f.value);
    }
    out += "}\n";
    return out;
  }
  if (timestamps_) out += "ts=" + utc_timestamp() + " ";
  out += "level=";
  out += to_string(l);
  out += " event=";
  out += event;
  for (const auto& f : fields) {
    out += ' ';
    out += f.key;
    out += '=';
    if (needs_quotes(f.value))
      append_quoted(out, f.value);
    else
      out += f.value;
  }
  out += '\n';
  return out;
}

void logger::write(level l, std::string_view event, std::initializer_list<field> fields) {
  std::string line = format_line(l, event, fields);
  std::lock_guard lock(mutex_);
  sink_(line);
}

std::string new_session_id() {
  static std::atomic<std::uint32_t> counter{[] {
    std::random_device rd;
    return rd();
  }()};
  // Multiplying by an odd constant walks all 2^32 values before repeating, without
  // making consecutive ids look sequential in logs.
  std::uint32_t n = counter.fetch_add(1, std::memory_order_relaxed) * 2654435761u;
  char text[12];
  std::snprintf(text, sizeof text, "s%08x", n);
  return text;
}

std::string redact_protocol_line(std::string_view line) {
  static constexpr std::string_view verbs[] = {"AUTH ", "PASS ", "LOGIN ", "APOP "};
  std::string upper(line.substr(0, 16));
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  // IMAP commands carry a tag first: "a1 LOGIN user pass".
  size_t start = 0;
  if (auto space = upper.find(' '); space != std::string::npos && upper.find("LOGIN ") == space + 1)
    start = space + 1;
  for (auto verb : verbs)
    if (std::string_view(upper).substr(start).starts_with(verb))
      return std::string(line.substr(0, start + verb.size())) + "<redacted>";
  return std::string(line);
}

}  // namespace postern::log
