#pragma once
/// A small JSON writer for the documents the programs print (`postern check --json`, probes,
/// reports): objects and arrays nested in order, commas placed for the caller, strings
/// quoted as the log's JSON lines quote them.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace postern::cli {

class json_writer {
 public:
  /// A key is given inside an object and omitted inside an array (or at the top).
  json_writer& begin_object(std::string_view key = {});
  json_writer& end_object();
  json_writer& begin_array(std::string_view key = {});
  json_writer& end_array();
  json_writer& string(std::string_view key, std::string_view value);
  json_writer& number(std::string_view key, std::int64_t value);
  json_writer& boolean(std::string_view key, bool value);
  /// The document so far (whole once every object and array is ended).
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  void next(std::string_view key);
  std::string text_;
  std::vector<bool> first_;  ///< per open container: nothing written in it yet
};

}  // namespace postern::cli
