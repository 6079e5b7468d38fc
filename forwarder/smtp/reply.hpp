#pragma once
/// SMTP replies (RFC 5321 §4.2): parsing what a server sends, formatting what we send.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::smtp {

struct reply {
  int code = 0;
  std::vector<std::string> lines;  ///< text of each line, without code and separator

  [[nodiscard]] bool positive() const { return code >= 200 && code < 400; }
  [[nodiscard]] bool transient() const { return code >= 400 && code < 500; }
  [[nodiscard]] bool permanent() const { return code >= 500; }
  /// All lines joined with "; ", for logs and for quoting in our own replies.
  [[nodiscard]] std::string text() const;
  /// "250 2.0.0 Ok: queued as 1234" on one line, for logs and the audit trail.
  [[nodiscard]] std::string one_line() const;
  /// The reply as sent on the wire (CRLF line ends).
  [[nodiscard]] std::string wire() const;
};

/// Builds a reply; `text` may hold several lines separated by '\n'. The enhanced status
/// code (RFC 3463), when given, is put in front of every line.
reply make_reply(int code, std::string_view enhanced, std::string_view text);

/// Accumulates the lines of one (possibly multi-line) reply.
class reply_parser {
 public:
  enum class status { more, done, malformed };
  /// Feeds one line without its CRLF.
  status feed(std::string_view line);
  /// The completed reply; the parser is reset for the next one.
  reply take();
  [[nodiscard]] const std::string& error() const { return error_; }

  static constexpr std::size_t max_lines = 200;

 private:
  reply current_;
  std::string error_;
};

/// What a server announced in its EHLO reply (RFC 5321 §4.1.1.1 and extensions).
struct ehlo_capabilities {
  bool pipelining = false;
  bool eightbitmime = false;
  bool smtputf8 = false;
  bool starttls = false;
  bool enhanced_status = false;
  bool dsn = false;
  bool size = false;
  std::uint64_t max_size = 0;     ///< 0: SIZE without a number, or no limit announced
  std::vector<std::string> auth;  ///< mechanisms, upper case
};

ehlo_capabilities parse_ehlo(const reply& r);

}  // namespace postern::smtp
