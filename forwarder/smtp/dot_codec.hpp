#pragma once
/// The DATA transparency procedure (RFC 5321 §4.5.2): undoing it on what a client sends,
/// redoing it on what goes upstream. Both work on chunks as they arrive, so a message of any
/// size streams through without being held whole.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace postern::smtp {

class dot_decoder {
 public:
  /// `find_bare_cr`: also look for bare CRs (the relay refuses them; retrieval keeps every
  /// byte and need not spend a scan on them).
  explicit dot_decoder(bool find_bare_cr = false) : find_bare_cr_(find_bare_cr) {}

  /// Decodes wire bytes into message bytes appended to `out`; returns how many bytes of
  /// `data` were consumed. Consumption stops after the terminating CRLF.CRLF (done() is then
  /// true and the rest of `data` belongs to the next command).
  std::size_t feed(const char* data, std::size_t len, std::string& out);
  [[nodiscard]] bool done() const { return state_ == state::done; }

  /// A '.' began a line after a bare LF, or a "." line ended with a bare LF. Servers
  /// disagree on where such a message ends (the "SMTP smuggling" ambiguity), so it must
  /// be refused rather than relayed.
  [[nodiscard]] bool ambiguous_dot() const { return ambiguous_dot_; }
  /// A CR not followed by LF was seen ("\r.\r" would end the data for a server that ends
  /// lines at a lone CR); RFC 5321 §2.3.8 forbids it. Only with find_bare_cr.
  [[nodiscard]] bool bare_cr() const { return bare_cr_; }
  /// Message bytes produced so far (after unstuffing).
  [[nodiscard]] std::size_t size() const { return size_; }

 private:
  enum class state { line_start, dot, dot_cr, body, done };
  state state_ = state::line_start;
  bool last_cr_ = false;        ///< the last message byte was CR
  bool after_bare_lf_ = false;  ///< the current line began after an LF without CR
  bool ambiguous_dot_ = false;
  bool find_bare_cr_;
  bool bare_cr_ = false;
  std::size_t size_ = 0;
};

class dot_encoder {
 public:
  /// Appends the dot-stuffed form of message bytes to `out`.
  void encode(const char* data, std::size_t len, std::string& out);
  /// Appends the end-of-data marker, completing an unterminated last line first.
  void finish(std::string& out);

 private:
  bool line_start_ = true;
  bool crlf_ended_ = true;  ///< the last line ended with CRLF (or nothing was sent yet)
  bool last_cr_ = false;
};

/// One line of a multi-line answer read line by line (a POP3 listing, RFC 1939 §3): the
/// line with its transparency undone, or nullopt for the terminating ".".
std::optional<std::string_view> unstuff_line(std::string_view line);

}  // namespace postern::smtp
