#pragma once
/// IMAP4rev1 (RFC 3501) wire syntax for postern-fetch, as pure functions: the server's
/// responses parsed into what the client acts on (status and response codes, capabilities,
/// EXISTS/EXPUNGE, FETCH items, VANISHED from RFC 7162, ENABLED from RFC 5161), and the
/// client's arguments written safely (astrings, modified UTF-7 folder names, UID sets).
/// Literals come inline ("{n}" CRLF, then n octets), as read off the wire; the client streams
/// a message body elsewhere and leaves an empty literal in its place.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::fetch {

enum class imap_status { none, ok, no, bad, preauth, bye };
const char* to_string(imap_status s);

struct imap_response {
  enum class kind { untagged, tagged, continuation };
  kind what = kind::untagged;
  std::string tag;  ///< tagged responses
  imap_status status = imap_status::none;
  std::string code;                ///< the response code, upper case ("UIDVALIDITY"), "" when none
  std::string code_arg;            ///< what follows the code inside the brackets, verbatim
  std::string text;                ///< the human-readable text (status responses, continuations)
  std::uint32_t number = 0;        ///< "* n EXISTS", "* n EXPUNGE", "* n FETCH"
  std::string name;                ///< upper case: OK, CAPABILITY, EXISTS, FETCH, VANISHED, ...
  std::vector<std::string> words;  ///< CAPABILITY and ENABLED atoms (upper case), SEARCH numbers
  // FETCH items the client asks for.
  std::optional<std::uint32_t> uid;
  std::optional<std::uint64_t> size;    ///< RFC822.SIZE
  std::optional<std::uint64_t> modseq;  ///< MODSEQ (RFC 7162)
  std::vector<std::string> flags;
  bool body = false;                  ///< a BODY[] item (its octets went to the body sink)
  std::optional<std::string> header;  ///< BODY[HEADER]
  // VANISHED (RFC 7162 §3.2.10).
  bool earlier = false;
  std::string uid_set;
};

/// Parses one complete response (its literals inline, no final CRLF); nullopt + `error`
/// when it is not IMAP.
std::optional<imap_response> parse_imap_response(std::string_view wire, std::string& error);

/// The size of the literal a line announces at its end ("{123}", "{123+}", "~{123}"), if any.
std::optional<std::uint64_t> trailing_literal(std::string_view line);

/// True when `line` is the start of an untagged FETCH whose last item is BODY[] (the octets
/// that follow are the message).
bool announces_body(std::string_view line);

/// An argument as an atom when it is one, else a quoted string; nullopt when only a literal
/// could carry it (CR, LF, NUL or 8-bit octets).
std::optional<std::string> imap_astring(std::string_view s);

/// A folder name (UTF-8) in modified UTF-7 (RFC 3501 §5.1.3), as the server names it.
std::string imap_folder_name(std::string_view utf8);

/// Ascending UIDs as a sequence set: "1:3,7,9:12".
std::string imap_uid_set(const std::vector<std::uint32_t>& sorted_uids);

/// Parses a UID set ("1:3,7"); nullopt when malformed. Ranges count towards `max` UIDs.
std::optional<std::vector<std::uint32_t>> parse_uid_set(std::string_view set,
                                                        std::size_t max = 10'000'000);

/// The capabilities the client uses.
struct imap_capabilities {
  bool imap4rev1 = false;
  bool starttls = false;
  bool login_disabled = false;
  bool uidplus = false;
  bool move = false;
  bool idle = false;
  bool condstore = false;
  bool qresync = false;
  bool literal_plus = false;
  bool enable = false;
  bool sasl_ir = false;
  std::vector<std::string> auth;  ///< AUTH= mechanisms, upper case
  [[nodiscard]] bool has_auth(std::string_view mech) const;
};

/// From the atoms of a CAPABILITY response (or response code).
imap_capabilities parse_imap_capabilities(const std::vector<std::string>& words);
/// The atoms of a "[CAPABILITY a b c]" code's argument, upper case.
std::vector<std::string> capability_words(std::string_view code_arg);

}  // namespace postern::fetch
