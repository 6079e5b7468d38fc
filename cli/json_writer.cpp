#include "cli/json_writer.hpp"

#include "cli/log.hpp"

namespace postern::cli {

void json_writer::next(std::string_view key) {
  if (!first_.empty()) {
    if (!first_.back()) text_ += ',';
    first_.back() = false;
  }
  if (!key.empty()) {
    log::append_quoted(text_, key);
    text_ += ':';
  }
}

json_writer& json_writer::begin_object(std::string_view key) {
  next(key);
  text_ += '{';
  first_.push_back(true);
  return *this;
}

json_writer& json_writer::end_object() {
  text_ += '}';
  first_.pop_back();
  return *this;
}

json_writer& json_writer::begin_array(std::string_view key) {
  next(key);
  text_ += '[';
  first_.push_back(true);
  return *this;
}

json_writer& json_writer::end_array() {
  text_ += ']';
  first_.pop_back();
  return *this;
}

json_writer& json_writer::string(std::string_view key, std::string_view value) {
  next(key);
  log::append_quoted(text_, value);
  return *this;
}

json_writer& json_writer::number(std::string_view key, std::int64_t value) {
  next(key);
  text_ += std::to_string(value);
  return *this;
}

json_writer& json_writer::boolean(std::string_view key, bool value) {
  next(key);
  text_ += value ? "true" : "false";
  return *this;
}

}  // namespace postern::cli
