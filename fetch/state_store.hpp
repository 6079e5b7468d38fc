#pragma once
/// What postern-fetch has done with each message of one mailbox, kept in `state_dir`:
/// one line per delivered (permanently failed, or adopted as already seen) UIDL with its time
/// and the size the message had, so that a UID the server reuses for another message is not
/// taken for the one delivered. Records are appended and fsynced one by one, so the order
/// deliver -> record -> DELE holds across a crash; the file is rewritten compactly (temp
/// file, fsync, rename, fsync of the directory) once per run. A lock file serialises runs on
/// the same mailbox. In memory the records are compact (one string arena, a sorted array):
/// a mailbox of a million kept messages costs tens of megabytes, not hundreds.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace postern::fetch {

enum class uid_outcome : std::uint8_t {
  delivered,
  failed,  ///< refused for good by the target: kept on the server until --retry-failed
  seen,    ///< there before the first run and chosen not to be delivered (--first-run)
};

struct uid_record {
  uid_outcome outcome = uid_outcome::delivered;
  std::int64_t time = 0;   ///< seconds since the epoch
  std::int64_t size = -1;  ///< octets as the server listed them; -1: unknown (version 1 file)
  /// IMAP: the message's identity beside its size, SHA-256 (hex) of its header section; ""
  /// when not known (POP3, older files).
  std::string digest;
};

class state_store {
 public:
  enum class open_status { ok, busy, error };
  struct opened {
    open_status status = open_status::error;
    std::unique_ptr<state_store> store;
    std::string error;  ///< busy: who holds it; error: what is wrong, naming the file
  };

  /// Locks and loads the state of `mailbox` in `dir` (created if missing); `scope` names a
  /// part of the mailbox with a state of its own (an IMAP folder). A state file that cannot be
  /// read or parsed is an error: starting over would deliver everything again.
  static opened open(const std::string& dir, const std::string& mailbox,
                     const std::string& scope = {});
  ~state_store();

  [[nodiscard]] std::optional<uid_record> find(std::string_view uid) const;
  [[nodiscard]] std::size_t size() const;
  /// False when there was no state file: a new mailbox, or a lost one.
  [[nodiscard]] bool existed() const { return existed_; }

  /// Durably records an outcome (append + fsync) before the caller goes on; false + error
  /// when the disk refused (the caller must then not DELE).
  bool record(const std::string& uid, uid_outcome outcome, std::int64_t time, std::int64_t size,
              std::string& error, const std::string& digest = {});
  /// Sets a record in memory only; the next compact() writes it, with all others, in one
  /// atomic rename. For records that need no ordering against a DELE (a size learnt, mail
  /// adopted as seen): a crash loses all of them or none, never some.
  void note(const std::string& uid, const uid_record& r) { changed_[uid] = r; }
  /// Forgets a record in memory only, as note() sets one: the next compact() drops it.
  void note_forgotten(const std::string& uid) { changed_[uid] = std::nullopt; }
  /// Forgets records (UIDLs no longer on the server, or failures to retry).
  bool forget(const std::vector<std::string>& uids, std::string& error);
  /// Rewrites the file compactly and atomically.
  bool compact(std::string& error);
  /// Calls `each` for every record, in UID order (as strings).
  void for_each(const std::function<void(std::string_view uid, const uid_record&)>& each);
  /// Named values kept with the records (an IMAP folder's UIDVALIDITY, where its listing
  /// starts); written by the next compact(), atomically with the records.
  [[nodiscard]] std::string meta(const std::string& name) const;
  void set_meta(const std::string& name, const std::string& value);

  [[nodiscard]] const std::string& path() const { return path_; }
  /// The file name used for a mailbox address (safe characters kept, others %XX), and for a
  /// scope of it (a space cannot be in an address, so the two never meet).
  static std::string file_name(const std::string& mailbox, const std::string& scope = {});

 private:
  state_store() = default;
  bool load(std::string& error);
  bool append(const std::string& line, std::string& error);
  /// Folds the records changed since the last compaction into the sorted array.
  void merge();

  std::string dir_;
  std::string path_;
  int lock_fd_ = -1;
  int journal_fd_ = -1;
  bool existed_ = false;
  /// 24 bytes a record, with the UID in arena_ (and its 32-octet digest right after it).
  struct stored {
    std::uint32_t offset;
    std::uint16_t length;
    uid_outcome outcome;
    bool has_digest;
    std::int64_t time;
    std::int64_t size;
  };
  [[nodiscard]] uid_record record_of(const stored& s) const;
  /// Puts `uid` and the digest (hex, or "") in the arena: the stored record's offset.
  std::uint32_t store_key(std::string_view uid, const std::string& digest);
  [[nodiscard]] std::string_view key(const stored& s) const {
    return std::string_view(arena_).substr(s.offset, s.length);
  }
  /// One record line of the file into `all` (its UID into arena_); false + error if corrupt.
  bool add_record(std::string_view line, int line_no, int version, std::vector<stored>& all,
                  std::string& error);
  /// Sorts `all` by UID and keeps each UID's last record, unless it forgets the UID; true
  /// when something was dropped (the file then wants rewriting).
  bool keep_latest(std::vector<stored>& all) const;
  std::string arena_;
  std::vector<stored> sorted_;  ///< by UID
  /// Changed since the last merge (nullopt: forgotten); looked up before sorted_.
  std::unordered_map<std::string, std::optional<uid_record>> changed_;
  std::map<std::string, std::string> meta_;
  bool meta_changed_ = false;
};

}  // namespace postern::fetch
