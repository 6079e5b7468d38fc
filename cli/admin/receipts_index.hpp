#pragma once
/// The derived index of `postern receipts` (SQLite): the submissions of the forwarder's audit
/// and the receipts of fetch's, read incrementally from the append-only JSONL files (by file,
/// inode and offset, so that logrotate's rename or copytruncate loses nothing and reads
/// nothing twice), and queried by Message-ID, mailbox, recipient and time. The JSONL files
/// stay the trail; the index can always be rebuilt from them (--reindex).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/admin/receipt_status.hpp"

struct sqlite3;

namespace postern::admin {

enum class audit_kind { forwarder, fetch };

struct receipts_filter {
  std::string message_id, mailbox, recipient;
  std::optional<std::int64_t> since, until;  ///< of the submission (receipts apart: their own)
  /// Skip what is settled whatever the time (every recipient's final receipt, or a refusal):
  /// --pending, without reading those messages' receipts.
  bool unsettled = false;
};

class receipts_index {
 public:
  /// Opens (creating, mode 0640) the index at `path`; null and `error` on failure.
  static std::unique_ptr<receipts_index> open(const std::string& path, std::string& error);
  ~receipts_index();
  receipts_index(const receipts_index&) = delete;
  receipts_index& operator=(const receipts_index&) = delete;

  /// Forgets everything (the files are read again from their start).
  bool reset(std::string& error);

  /// Reads what is new in `file`: from the offset last reached when it is the same file (its
  /// inode) and has not shrunk; else, first the rest of the file it was (found rotated as
  /// `file.1`), then `file` from its start; a first read (or one after reset) reads `file.1`
  /// first when there is one. A last line without its newline is being written:
  /// it is left for next time. A line that does not parse is reported in `problems` as
  /// "file:line: error" and skipped. A file that does not exist is nothing new.
  bool ingest(const std::string& file, audit_kind kind, std::vector<std::string>& problems,
              std::string& error);

  /// Every message matching `filter`, assessed at `now`, oldest submission first.
  std::vector<message_report> messages(const receipts_filter& filter, std::int64_t now,
                                       const receipt_policy& policy, std::string& error);
  /// Receipts that name no submission in the index (sent from webmail, or before postern).
  std::vector<receipt> unmatched(const receipts_filter& filter, std::string& error);

 private:
  explicit receipts_index(sqlite3* db) : db_(db) {}
  bool exec(const char* sql, std::string& error);
  bool read_file(const std::string& file, audit_kind kind, std::uint64_t inode,
                 std::uint64_t offset, std::uint64_t line, const std::string& source,
                 std::vector<std::string>& problems, std::string& error);
  sqlite3* db_;
};

}  // namespace postern::admin
