#pragma once
/// POP3 (RFC 1939, CAPA and PIPELINING from RFC 2449, STLS from RFC 2595, AUTH from RFC 5034)
/// as pure functions: status lines, capabilities, UIDL and LIST listings. Multi-line bodies use
/// the same dot transparency as SMTP (forwarder/dot_codec.hpp).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::fetch {

/// A single-line response: "+OK text" or "-ERR text".
struct pop3_status {
  bool ok = false;
  std::string text;
};

/// Parses a status line (without CRLF); nullopt when it is neither +OK nor -ERR.
std::optional<pop3_status> parse_status(std::string_view line);

struct pop3_capabilities {
  bool uidl = false;
  bool pipelining = false;
  bool stls = false;
  bool user = false;  ///< USER/PASS allowed
  bool top = false;
  std::vector<std::string> sasl;  ///< mechanisms, upper case
};

/// Reads the lines of a CAPA response (between "+OK" and "."); unknown tags are ignored.
pop3_capabilities parse_capa(const std::vector<std::string>& lines);

struct listing_entry {
  std::uint32_t number = 0;
  std::string uid;         ///< UIDL: the unique id (1-70 printable characters, RFC 1939 §7)
  std::uint64_t size = 0;  ///< LIST: octets
};

/// A UIDL listing held compactly (one arena for the unique ids): a mailbox of a million
/// messages costs some twenty megabytes, not a string object per message.
class uid_listing {
 public:
  void add(std::uint32_t number, std::string_view uid);
  /// Room for about `count` entries (a hint, e.g. the records of the mailbox's state).
  void reserve(std::size_t count) {
    entries_.reserve(count);
    arena_.reserve(count * 24);
  }
  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  [[nodiscard]] std::uint32_t number(std::size_t i) const { return entries_[i].number; }
  [[nodiscard]] std::string_view uid(std::size_t i) const {
    return std::string_view(arena_).substr(entries_[i].offset, entries_[i].length);
  }

 private:
  struct entry {
    std::uint32_t number;
    std::uint32_t offset;
    std::uint8_t length;  ///< a UID is at most 70 octets (RFC 1939 §7)
  };
  std::string arena_;
  std::vector<entry> entries_;
};

/// A LIST listing: each message number with its size, in the server's (ascending) order.
class size_listing {
 public:
  void add(std::uint32_t number, std::uint64_t size) { entries_.push_back({number, size}); }
  void reserve(std::size_t count) { entries_.reserve(count); }
  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  /// The listed size of `number`, nullopt when it is not listed.
  [[nodiscard]] std::optional<std::uint64_t> of(std::uint32_t number) const;
  [[nodiscard]] std::uint32_t number(std::size_t i) const { return entries_[i].number; }
  [[nodiscard]] std::uint64_t size_at(std::size_t i) const { return entries_[i].size; }

 private:
  struct entry {
    std::uint32_t number;
    std::uint64_t size;
  };
  std::vector<entry> entries_;
};

/// One line of a UIDL or LIST listing ("3 whqtswO00WBw418f9t5JxYwZ" / "3 120"); nullopt,
/// with the reason, when malformed. A malformed listing must stop the run: guessing could
/// re-deliver or skip mail.
std::optional<listing_entry> parse_uidl_line(std::string_view line, std::string* error);
std::optional<listing_entry> parse_list_line(std::string_view line, std::string* error);

}  // namespace postern::fetch
