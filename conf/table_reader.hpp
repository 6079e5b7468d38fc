#pragma once
/// Strict, typed reading of one TOML table: every key read is checked for type and
/// value, every key not read is reported as unknown (with a "did you mean"), and all
/// problems go to a shared diagnostics list with their file:line:col.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "diagnostics.hpp"
#include "units.hpp"

namespace postern::conf {

class table_reader {
 public:
  /// `path` is the key path of this table ("" for the root, "service[1]" for an array entry).
  table_reader(const toml::table& table, std::string path, const std::string& file,
               diagnostics& diags);

  std::optional<std::string> get_string(std::string_view key);
  std::optional<bool> get_bool(std::string_view key);
  std::optional<std::int64_t> get_int(std::string_view key, std::int64_t min, std::int64_t max);
  std::optional<duration> get_duration(std::string_view key);
  std::optional<std::uint64_t> get_size(std::string_view key);
  /// A string or an array of strings (both spellings are natural for lists of one).
  std::optional<std::vector<std::string>> get_string_list(std::string_view key);
  /// An array of tables (`[[key]]`), each wrapped in its own reader path.
  const toml::array* get_table_array(std::string_view key);
  const toml::table* get_table(std::string_view key);

  /// A string restricted to a fixed set of words, mapped to values.
  template <typename T>
  std::optional<T> get_choice(std::string_view key,
                              std::initializer_list<std::pair<std::string_view, T>> choices) {
    auto text = get_string(key);
    if (!text) return std::nullopt;
    std::vector<std::string> words;
    for (const auto& [word, value] : choices) {
      if (word == *text) return value;
      words.emplace_back(word);
    }
    error(key, choice_message(*text, words));
    return std::nullopt;
  }

  [[nodiscard]] bool has(std::string_view key) const { return table_.contains(key); }
  /// Reports a problem at the key's value (or at the table when the key is absent).
  void error(std::string_view key, std::string message);
  /// Reports a warning there: the load succeeds, --check and every start show it.
  void warning(std::string_view key, std::string message);
  /// Reports a required key that is absent.
  void require(std::string_view key);
  /// Reports every key of the table that no get_* call asked for.
  void finish();

  [[nodiscard]] std::string key_path(std::string_view key) const;
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] const std::string& file() const { return file_; }
  [[nodiscard]] diagnostics& diags() { return diags_; }

 private:
  const toml::node* lookup(std::string_view key);
  void type_error(std::string_view key, const toml::node& node, std::string_view expected);
  static std::string choice_message(const std::string& got, const std::vector<std::string>& words);

  const toml::table& table_;
  std::string path_;
  const std::string& file_;
  diagnostics& diags_;
  std::set<std::string, std::less<>> seen_;
};

/// Reads the `[timeouts]` table of `parent`: each key a duration longer than 0s, stored in
/// its slot; unknown keys reported.
void read_timeouts_table(table_reader& parent,
                         std::initializer_list<std::pair<const char*, duration*>> keys);

/// A relative path written in a config file is relative to that file's directory.
std::string resolve_path(const std::string& config_file, const std::string& path);

/// Reads and parses a TOML file; parse errors go to `diags` and nullopt is returned. The
/// file's text is wiped from memory once parsed.
std::optional<toml::table> parse_toml_file(const std::string& file, diagnostics& diags);

/// Overwrites every string value of a parsed document (before it is freed), so an inline
/// password read from it does not linger in freed memory.
void wipe_strings(toml::node& node);

}  // namespace postern::conf
