#pragma once
/// What postern-fetch has done with each message of one mailbox, kept in `state_dir`:
/// one line per delivered (or permanently failed) UIDL with its time. Records are appended and
/// fsynced one by one, so the order deliver -> record -> DELE holds across a crash; the file is
/// rewritten compactly (temp file, fsync, rename, fsync of the directory) once per run. A
/// lock file serialises runs on the same mailbox.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace postern::fetch {

enum class uid_outcome { delivered, failed };

struct uid_record {
  uid_outcome outcome = uid_outcome::delivered;
  std::int64_t time = 0;  ///< seconds since the epoch
};

class state_store {
 public:
  enum class open_status { ok, busy, error };
  struct opened {
    open_status status = open_status::error;
    std::unique_ptr<state_store> store;
    std::string error;  ///< busy: who holds it; error: what is wrong, naming the file
  };

  /// Locks and loads the state of `mailbox` in `dir` (created if missing). A state file that
  /// cannot be read or parsed is an error: starting over would deliver everything again.
  static opened open(const std::string& dir, const std::string& mailbox);
  ~state_store();

  [[nodiscard]] const uid_record* find(const std::string& uid) const;
  [[nodiscard]] const std::map<std::string, uid_record>& records() const { return records_; }

  /// Durably records an outcome (append + fsync) before the caller goes on; false + error
  /// when the disk refused (the caller must then not DELE).
  bool record(const std::string& uid, uid_outcome outcome, std::int64_t time, std::string& error);
  /// Forgets records (UIDLs no longer on the server, or failures to retry).
  bool forget(const std::vector<std::string>& uids, std::string& error);
  /// Rewrites the file compactly and atomically.
  bool compact(std::string& error);

  [[nodiscard]] const std::string& path() const { return path_; }
  /// The file name used for a mailbox address (safe characters kept, others %XX).
  static std::string file_name(const std::string& mailbox);

 private:
  state_store() = default;
  bool load(std::string& error);
  bool append(const std::string& line, std::string& error);

  std::string dir_;
  std::string path_;
  int lock_fd_ = -1;
  int journal_fd_ = -1;
  std::map<std::string, uid_record> records_;
};

}  // namespace postern::fetch
