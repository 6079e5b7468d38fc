#pragma once
/// Delivery targets that write locally: a Maildir (tmp -> fsync -> rename into new, so a
/// reader never sees half a message and a crash leaves only a file in tmp/) and mboxrd on a
/// descriptor (stdout, for pipelines). Both take the message in chunks as it is retrieved.

#include <cstdint>
#include <optional>
#include <string>

namespace postern::fetch {

/// A Maildir as a run uses it: its directories made once, the host name and pid of the file
/// names, and new/ kept open for the fsync that makes each rename durable.
class maildir_place {
 public:
  /// Creates DIR/{tmp,new,cur} if missing.
  bool open(const std::string& dir, std::string& error);
  ~maildir_place();
  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] const std::string& suffix() const { return suffix_; }
  [[nodiscard]] int new_fd() const { return new_fd_; }

 private:
  std::string dir_, suffix_;  ///< suffix: "P<pid>" and the host part of every file name
  int new_fd_ = -1;
};

class maildir_writer {
 public:
  /// Opens a new file in the Maildir's tmp/.
  bool begin(const maildir_place& place, std::string& error);
  /// The same for a Maildir opened just for this message.
  bool begin(const std::string& dir, std::string& error);
  bool write(const std::string& bytes, std::string& error);
  /// fsync, rename into new/, fsync new/: the message is delivered when this returns true.
  bool commit(std::string& error);
  /// Removes the unfinished file.
  void abort();
  /// Removes what runs that were killed (kill -9, a power cut) left in DIR/tmp: files of
  /// postern-fetch's that no live writer holds locked. Returns how many.
  static std::size_t remove_abandoned(const std::string& dir);
  ~maildir_writer() { abort(); }
  [[nodiscard]] const std::string& delivered_path() const { return final_path_; }

 private:
  int fd_ = -1;
  const maildir_place* place_ = nullptr;
  std::optional<maildir_place> own_place_;
  std::string tmp_path_, final_path_, name_;
  std::uint64_t size_ = 0;
};

/// mboxrd (as mutt and formail read it): a "From " separator line, CRLF turned into LF, and
/// every line that matches ^>*From  quoted with one more '>', so it can be undone exactly.
class mboxrd_encoder {
 public:
  /// The separator line for a message from `sender` received at `unix_time`.
  static std::string separator(const std::string& sender, std::int64_t unix_time);
  void encode(const std::string& bytes, std::string& out);
  /// Ends the message: a final newline if missing, then the empty line between messages.
  void finish(std::string& out);

 private:
  void end_line(std::string& out);
  std::string line_start_;  ///< the beginning of the current line while it may still be ^>*From
  bool at_line_start_ = true;
  bool deciding_ = true;  ///< still collecting line_start_
  bool pending_cr_ = false;
};

/// The one header postern-fetch adds (RFC 5321 §4.4 trace field); every other byte of the
/// message is kept as retrieved.
std::string received_header(const std::string& server, const std::string& protocol,
                            const std::string& uid, const std::string& recipient,
                            const std::string& hostname, std::int64_t unix_time);

}  // namespace postern::fetch
