#include "cli/admin/receipts_index.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include <sqlite3.h>

#include "cli/admin/audit_reader.hpp"

namespace postern::admin {

namespace {

/// The index's layout; an index of another version is dropped and read again from the files.
constexpr int schema_version = 2;
constexpr const char* drop = R"(
DROP TABLE IF EXISTS sources; DROP TABLE IF EXISTS submissions; DROP TABLE IF EXISTS receipts;
DROP TABLE IF EXISTS finals; DROP TABLE IF EXISTS settled;
)";
constexpr const char* schema = R"(
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA cache_size = -65536;
CREATE TABLE IF NOT EXISTS sources(path TEXT PRIMARY KEY, inode INTEGER, offset INTEGER,
                                   line INTEGER);
CREATE TABLE IF NOT EXISTS submissions(message_id TEXT, mailbox TEXT, time INTEGER,
  outcome TEXT, reply TEXT, uncertain INTEGER, recipients TEXT, rcount INTEGER);
CREATE INDEX IF NOT EXISTS submissions_id ON submissions(message_id);
CREATE INDEX IF NOT EXISTS submissions_time ON submissions(time);
CREATE TABLE IF NOT EXISTS receipts(ref TEXT, kind TEXT, recipient TEXT, time INTEGER,
  provider_id TEXT, error TEXT, mailbox TEXT);
CREATE INDEX IF NOT EXISTS receipts_ref ON receipts(ref);
-- What settles a message, kept as receipts arrive so that --pending skips the settled ones
-- without reading their receipts: each recipient's final word once, and refusals.
CREATE TABLE IF NOT EXISTS finals(ref TEXT, recipient TEXT, PRIMARY KEY(ref, recipient))
  WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settled(ref TEXT PRIMARY KEY, finals INTEGER, refused INTEGER)
  WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS count_final AFTER INSERT ON finals BEGIN
  INSERT INTO settled VALUES(NEW.ref, 1, 0)
    ON CONFLICT(ref) DO UPDATE SET finals = finals + 1;
END;
)";

/// A prepared statement, finalized when it goes.
class statement {
 public:
  statement(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~statement() { sqlite3_finalize(s_); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;
  [[nodiscard]] bool ok() const { return s_ != nullptr; }
  statement& text(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  statement& number(int i, std::int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  /// SQLITE_ROW, SQLITE_DONE or an error.
  int step() { return sqlite3_step(s_); }
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  [[nodiscard]] std::string column_text(int i) const {
    const unsigned char* t = sqlite3_column_text(s_, i);
    return t ? std::string(reinterpret_cast<const char*>(t),
                           static_cast<std::size_t>(sqlite3_column_bytes(s_, i)))
             : std::string();
  }
  [[nodiscard]] std::int64_t column_number(int i) const { return sqlite3_column_int64(s_, i); }

 private:
  sqlite3_stmt* s_ = nullptr;
};

std::string join(const std::vector<std::string>& list) {
  std::string out;
  for (const auto& s : list) out += (out.empty() ? "" : "\n") + s;
  return out;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size() && !text.empty()) {
    std::size_t end = text.find('\n', start);
    out.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

/// Stores the parsed lines of one read, inside the caller's transaction.
class line_store {
 public:
  line_store(sqlite3* db, audit_kind kind)
      : kind_(kind),
        submission_(db, "INSERT INTO submissions VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
        receipt_(db, "INSERT INTO receipts VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
        final_(db, "INSERT OR IGNORE INTO finals VALUES(?1, lower(?2))"),
        refused_(
            db, "INSERT INTO settled VALUES(?1, 0, 1) ON CONFLICT(ref) DO UPDATE SET refused = 1") {
  }
  [[nodiscard]] bool ok() const {
    return submission_.ok() && receipt_.ok() && final_.ok() && refused_.ok();
  }

  /// False with `error` when the line does not parse or lacks what its kind needs.
  bool add(std::string_view line, std::string& error) {
    auto fields = parse_audit_line(line, error);
    if (!fields) return false;
    if (kind_ == audit_kind::forwarder) {
      auto s = submission_of(*fields, error);
      if (!s) return error.empty();
      submission_.text(1, s->message_id).text(2, s->mailbox).number(3, s->time);
      submission_.text(4, s->outcome).text(5, s->reply).number(6, s->uncertain);
      submission_.text(7, join(s->recipients));
      submission_.number(8, static_cast<std::int64_t>(s->recipients.size()));
      return finish(submission_, error);
    }
    auto r = receipt_of(*fields, error);
    if (!r) return error.empty();
    receipt_.text(1, r->ref_message_id).text(2, fetch::to_string(r->kind));
    receipt_.text(3, r->recipient).number(4, r->time).text(5, r->provider_id).text(6, r->error);
    receipt_.text(7, r->mailbox);
    if (!finish(receipt_, error)) return false;
    using fetch::pec_kind;
    if ((r->kind == pec_kind::avvenuta_consegna || r->kind == pec_kind::errore_consegna) &&
        !r->recipient.empty()) {
      final_.text(1, r->ref_message_id).text(2, r->recipient);
      return finish(final_, error);
    }
    if (r->kind == pec_kind::non_accettazione || r->kind == pec_kind::rilevazione_virus) {
      refused_.text(1, r->ref_message_id);
      return finish(refused_, error);
    }
    return true;
  }

 private:
  static bool finish(statement& s, std::string& error) {
    const int rc = s.step();
    s.reset();
    if (rc == SQLITE_DONE) return true;
    error = std::string("index: ") + sqlite3_errstr(rc);
    return false;
  }
  audit_kind kind_;
  statement submission_, receipt_, final_, refused_;
};

}  // namespace

std::unique_ptr<receipts_index> receipts_index::open(const std::string& path, std::string& error) {
  // Created private to the group: it holds addresses and Message-IDs, like the audit files.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    error = "index " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  ::close(fd);
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    error = "index " + path + ": " + (db ? sqlite3_errmsg(db) : "cannot open");
    sqlite3_close(db);
    return nullptr;
  }
  sqlite3_busy_timeout(db, 10000);  // another run (a timer's, an admin's) may be ingesting
  std::unique_ptr<receipts_index> index(new receipts_index(db));
  int version = 0;
  {
    statement q(db, "PRAGMA user_version");
    if (q.step() == SQLITE_ROW) version = static_cast<int>(q.column_number(0));
  }
  const std::string set_version = "PRAGMA user_version = " + std::to_string(schema_version);
  if ((version != schema_version &&
       !(index->exec(drop, error) && index->exec(set_version.c_str(), error))) ||
      !index->exec(schema, error)) {
    error = "index " + path + ": " + error;
    return nullptr;
  }
  return index;
}

receipts_index::~receipts_index() { sqlite3_close(db_); }

bool receipts_index::exec(const char* sql, std::string& error) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) == SQLITE_OK) return true;
  error = message ? message : "SQLite error";
  sqlite3_free(message);
  return false;
}

bool receipts_index::reset(std::string& error) {
  return exec(
      "DELETE FROM sources; DELETE FROM submissions; DELETE FROM receipts; "
      "DELETE FROM finals; DELETE FROM settled;",
      error);
}

bool receipts_index::ingest(const std::string& file, audit_kind kind,
                            std::vector<std::string>& problems, std::string& error) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    if (errno == ENOENT) return true;
    error = file + ": " + std::strerror(errno);
    return false;
  }
  std::uint64_t inode = 0, offset = 0, line = 0;
  bool known = false;
  {
    statement q(db_, "SELECT inode, offset, line FROM sources WHERE path = ?1");
    q.text(1, file);
    if (q.step() == SQLITE_ROW) {
      known = true;
      inode = static_cast<std::uint64_t>(q.column_number(0));
      offset = static_cast<std::uint64_t>(q.column_number(1));
      line = static_cast<std::uint64_t>(q.column_number(2));
    }
  }
  struct stat old {};
  const std::string rotated = file + ".1";
  const bool has_rotated = ::stat(rotated.c_str(), &old) == 0 && old.st_ino != st.st_ino;
  if (!known && has_rotated) {
    // A first read (or --reindex) takes the last rotated file too, then the current one.
    if (!read_file(rotated, kind, old.st_ino, 0, 0, file, problems, error)) return false;
  } else if (known && inode != st.st_ino) {
    // Renamed by logrotate: finish the file it was, then read the new one from its start.
    if (has_rotated && old.st_ino == inode &&
        !read_file(rotated, kind, inode, offset, line, file, problems, error))
      return false;
    offset = line = 0;
  } else if (known && static_cast<std::uint64_t>(st.st_size) < offset) {
    offset = line = 0;  // copytruncate: what was there is in the index already
  }
  return read_file(file, kind, st.st_ino, offset, line, file, problems, error);
}

bool receipts_index::read_file(const std::string& file, audit_kind kind, std::uint64_t inode,
                               std::uint64_t offset, std::uint64_t line, const std::string& source,
                               std::vector<std::string>& problems, std::string& error) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = file + ": " + std::strerror(errno);
    return false;
  }
  if (!exec("BEGIN", error)) {
    ::close(fd);
    return false;
  }
  line_store store(db_, kind);
  std::string pending;  // a line not ended yet
  std::uint64_t done = offset;
  char buffer[1 << 16];
  ::lseek(fd, static_cast<off_t>(offset), SEEK_SET);
  bool ok = store.ok();
  for (ssize_t n; ok && (n = ::read(fd, buffer, sizeof buffer)) > 0;) {
    pending.append(buffer, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t end; (end = pending.find('\n', start)) != std::string::npos; start = end + 1) {
      ++line;
      std::string_view text(pending.data() + start, end - start);
      std::string problem;
      if (!text.empty() && !store.add(text, problem)) {
        if (problem.starts_with("index: ")) {
          error = file + ": " + problem;
          ok = false;
          break;
        }
        problems.push_back(file + ":" + std::to_string(line) + ": " + problem);
      }
      done += end - start + 1;
    }
    pending.erase(0, start);
  }
  ::close(fd);
  if (ok) {
    statement save(db_, "INSERT OR REPLACE INTO sources VALUES(?1, ?2, ?3, ?4)");
    save.text(1, source).number(2, static_cast<std::int64_t>(inode));
    save.number(3, static_cast<std::int64_t>(done)).number(4, static_cast<std::int64_t>(line));
    ok = save.step() == SQLITE_DONE;
    if (!ok) error = std::string("index: ") + sqlite3_errmsg(db_);
  }
  std::string ignored;
  if (!ok) {
    exec("ROLLBACK", ignored);
    return false;
  }
  return exec("COMMIT", error);
}

namespace {

/// The columns receipt_row reads, in its order.
constexpr const char* receipt_columns = "ref, kind, recipient, time, provider_id, error, mailbox";

receipt receipt_row(const statement& q) {
  receipt got;
  got.ref_message_id = q.column_text(0);
  got.kind = receipt_kind_of(q.column_text(1)).value_or(fetch::pec_kind::not_pec);
  got.recipient = q.column_text(2);
  got.time = q.column_number(3);
  got.provider_id = q.column_text(4);
  got.error = q.column_text(5);
  got.mailbox = q.column_text(6);
  return got;
}

/// Binds what the query names (an index beyond the statement's parameters is ignored).
void bind_filter(statement& q, const receipts_filter& f) {
  q.text(1, f.message_id).text(2, f.mailbox).text(3, f.recipient);
  if (f.since) q.number(4, *f.since);
  if (f.until) q.number(5, *f.until);
}

}  // namespace

std::vector<message_report> receipts_index::messages(const receipts_filter& filter,
                                                     std::int64_t now, const receipt_policy& policy,
                                                     std::string& error) {
  std::vector<message_report> out;
  // Only the conditions asked for, so that SQLite can use the index of each.
  std::string sql =
      "SELECT message_id, mailbox, time, outcome, reply, uncertain, recipients "
      "FROM submissions WHERE 1";
  if (!filter.message_id.empty()) sql += " AND message_id = ?1";
  if (!filter.mailbox.empty()) sql += " AND lower(mailbox) = lower(?2)";
  if (!filter.recipient.empty())
    sql +=
        " AND instr(lower(char(10) || recipients || char(10)), "
        "lower(char(10) || ?3 || char(10))) > 0";
  if (filter.since) sql += " AND time >= ?4";
  if (filter.until) sql += " AND time < ?5";
  if (filter.unsettled)
    sql +=
        " AND NOT EXISTS (SELECT 1 FROM settled st WHERE st.ref = message_id "
        "AND (st.refused OR st.finals >= rcount))";
  sql += " ORDER BY time";
  statement q(db_, sql.c_str());
  const std::string by_ref =
      "SELECT " + std::string(receipt_columns) + " FROM receipts WHERE ref = ?1";
  statement r(db_, by_ref.c_str());
  if (!q.ok() || !r.ok()) {
    error = std::string("index: ") + sqlite3_errmsg(db_);
    return out;
  }
  bind_filter(q, filter);
  // Rows come in time order (the time index serves --since); a message's lines are gathered
  // in the order its first line came.
  std::vector<std::vector<submission>> groups;
  std::unordered_map<std::string, std::size_t> group_of;
  while (q.step() == SQLITE_ROW) {
    submission s;
    s.message_id = q.column_text(0);
    s.mailbox = q.column_text(1);
    s.time = q.column_number(2);
    s.outcome = q.column_text(3);
    s.reply = q.column_text(4);
    s.uncertain = q.column_number(5) != 0;
    s.recipients = split(q.column_text(6));
    auto [it, added] = group_of.try_emplace(s.message_id, groups.size());
    if (added) groups.emplace_back();
    groups[it->second].push_back(std::move(s));
  }
  for (const auto& lines : groups) {
    std::vector<receipt> receipts;
    r.text(1, lines.front().message_id);
    while (r.step() == SQLITE_ROW) receipts.push_back(receipt_row(r));
    r.reset();
    out.push_back(assess(submission_that_counts(lines), receipts, now, policy));
  }
  std::stable_sort(out.begin(), out.end(), [](const message_report& a, const message_report& b) {
    return a.sent.time < b.sent.time;
  });
  return out;
}

std::vector<receipt> receipts_index::unmatched(const receipts_filter& filter, std::string& error) {
  std::vector<receipt> out;
  std::string sql = "SELECT " + std::string(receipt_columns) +
                    " FROM receipts r "
                    "WHERE NOT EXISTS (SELECT 1 FROM submissions s WHERE s.message_id = r.ref)";
  if (!filter.message_id.empty()) sql += " AND ref = ?1";
  if (!filter.mailbox.empty()) sql += " AND lower(mailbox) = lower(?2)";
  if (!filter.recipient.empty()) sql += " AND lower(recipient) = lower(?3)";
  if (filter.since) sql += " AND time >= ?4";
  if (filter.until) sql += " AND time < ?5";
  sql += " ORDER BY time";
  statement q(db_, sql.c_str());
  if (!q.ok()) {
    error = std::string("index: ") + sqlite3_errmsg(db_);
    return out;
  }
  bind_filter(q, filter);
  while (q.step() == SQLITE_ROW) out.push_back(receipt_row(q));
  return out;
}

}  // namespace postern::admin
