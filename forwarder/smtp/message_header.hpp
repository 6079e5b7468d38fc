#pragma once
/// The header block of a message (RFC 5322 §2.2): parsed enough to read and edit a few
/// fields while every other byte stays exactly as the client sent it.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::smtp {

struct header_field {
  std::string name;  ///< as written
  std::string raw;   ///< the whole field as received: "Name: value\r\n" with its folded lines
  /// The unfolded value without the name, leading space and line end.
  [[nodiscard]] std::string value() const;
};

class header_block {
 public:
  /// Splits a header block (everything before the empty line, which is not included).
  /// Lines that are neither fields nor continuations are kept verbatim as unnamed fields.
  static header_block parse(std::string_view text);

  [[nodiscard]] const std::vector<header_field>& fields() const { return fields_; }
  /// First field named `name` (case-insensitive), or null.
  [[nodiscard]] const header_field* find(std::string_view name) const;
  /// Values of every field named `name`.
  [[nodiscard]] std::vector<std::string> values(std::string_view name) const;
  /// Removes every field named `name`; returns how many were removed.
  std::size_t remove(std::string_view name);
  /// Appends "Name: value" with the line ending the block already uses.
  void add(std::string_view name, std::string_view value);
  /// The block as bytes, each untouched field byte-identical to the input.
  [[nodiscard]] std::string serialize() const;

 private:
  std::vector<header_field> fields_;
  std::string eol_ = "\r\n";
};

/// Where the header block ends in `text`: the offset just past the empty line, or nullopt
/// when no empty line has arrived yet.
std::optional<std::size_t> header_end(std::string_view text);

/// The addr-specs of an address list (RFC 5322 §3.4): display names, comments, quoted
/// strings and groups are understood; the result is "local@domain" per mailbox.
std::vector<std::string> parse_address_list(std::string_view value);

}  // namespace postern::smtp
