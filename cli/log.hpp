#pragma once
/// Structured logging: one line per event, `key=value` text or JSON lines, with the
/// session id as a field. The sink is injectable so tests can assert on events.

#include <atomic>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>

namespace postern::log {

enum class level { error, warn, info, debug, trace };
enum class format { text, json };

const char* to_string(level l);

/// One key=value pair. Values are copied into the line as they are: never pass a secret.
/// Numbers stay numbers in JSON lines.
struct field {
  std::string_view key;
  std::string value;
  bool number = false;
  field(std::string_view k, std::string v) : key(k), value(std::move(v)) {}
  field(std::string_view k, std::string_view v) : key(k), value(v) {}
  field(std::string_view k, const char* v) : key(k), value(v ? v : "") {}
  template <typename N>
  requires std::is_arithmetic_v<N> field(std::string_view k, N v)
      : key(k), value(std::to_string(v)), number(true) {}
};

using sink = std::function<void(std::string_view line)>;

/// Process-wide logger. Thread-safe; each event is written with one call to the sink.
class logger {
 public:
  static logger& instance();

  void set_level(level l) { level_.store(l, std::memory_order_relaxed); }
  void set_format(format f) { format_ = f; }
  /// Timestamps are left out under journald (JOURNAL_STREAM set), which adds its own.
  void set_timestamps(bool on) { timestamps_ = on; }
  void set_sink(sink s);
  [[nodiscard]] bool enabled(level l) const { return l <= level_.load(std::memory_order_relaxed); }

  void write(level l, std::string_view event, std::initializer_list<field> fields);
  /// Formats without writing (used by write and by tests).
  [[nodiscard]] std::string format_line(level l, std::string_view event,
                                        std::initializer_list<field> fields) const;

 private:
  logger();
  std::atomic<level> level_{level::info};
  format format_ = format::text;
  bool timestamps_ = true;
  std::mutex mutex_;
  sink sink_;
};

inline void event(level l, std::string_view name, std::initializer_list<field> fields) {
  auto& lg = logger::instance();
  if (lg.enabled(l)) lg.write(l, name, fields);
}
inline void error(std::string_view name, std::initializer_list<field> f) {
  event(level::error, name, f);
}
inline void warn(std::string_view name, std::initializer_list<field> f) {
  event(level::warn, name, f);
}
inline void info(std::string_view name, std::initializer_list<field> f) {
  event(level::info, name, f);
}
inline void debug(std::string_view name, std::initializer_list<field> f) {
  event(level::debug, name, f);
}
/// A protocol machine's move from one named state to another (trace level), when it moved.
inline void transition(std::string_view name, std::string_view session, const char* from,
                       const char* to) {
  if (std::string_view(from) != to && logger::instance().enabled(level::trace))
    logger::instance().write(level::trace, name,
                             {{"session", session}, {"from", from}, {"to", to}});
}

/// Appends `v` as a quoted JSON string (also used for quoted values in text lines). Bytes
/// that are not UTF-8 (a client's 8-bit garbage) become U+FFFD, so every line stays valid
/// JSON for strict parsers.
void append_quoted(std::string& out, std::string_view v);
/// Now as "2026-11-23T10:00:00.123Z".
std::string utc_timestamp();

/// A short unique id for a connection or session ("s" + 8 hex digits), unique per process run.
std::string new_session_id();

/// Replaces anything after AUTH/PASS/LOGIN verbs in a protocol line by "<redacted>".
std::string redact_protocol_line(std::string_view line);

}  // namespace postern::log
