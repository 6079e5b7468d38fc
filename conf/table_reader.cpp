#include "table_reader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <openssl/mem.h>

namespace postern::conf {

namespace {

const char* type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date/time";
  }
}

}  // namespace

table_reader::table_reader(const toml::table& table, std::string path, const std::string& file,
                           diagnostics& diags)
    : table_(table), path_(std::move(path)), file_(file), diags_(diags) {}

std::string table_reader::key_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

const toml::node* table_reader::lookup(std::string_view key) {
  seen_.emplace(key);
  return table_.get(key);
}

void table_reader::error(std::string_view key, std::string message) {
  const toml::node* node = table_.get(key);
  const auto& where = node ? node->source().begin : table_.source().begin;
  diags_.add({file_, static_cast<int>(where.line), static_cast<int>(where.column), key_path(key),
              std::move(message)});
}

void table_reader::warning(std::string_view key, std::string message) {
  const toml::node* node = table_.get(key);
  const auto& where = node ? node->source().begin : table_.source().begin;
  diags_.warn({file_, static_cast<int>(where.line), static_cast<int>(where.column), key_path(key),
               std::move(message)});
}

void table_reader::require(std::string_view key) {
  if (!table_.contains(key)) error(key, "required key is missing");
}

void table_reader::type_error(std::string_view key, const toml::node& node,
                              std::string_view expected) {
  error(key, "expected " + std::string(expected) + ", got " + type_name(node));
}

std::optional<std::string> table_reader::get_string(std::string_view key) {
  const toml::node* node = lookup(key);
  if (!node) return std::nullopt;
  if (auto v = node->value<std::string>(); v && node->is_string()) return v;
  type_error(key, *node, "a string");
  return std::nullopt;
}

std::optional<bool> table_reader::get_bool(std::string_view key) {
  const toml::node* node = lookup(key);
  if (!node) return std::nullopt;
  if (node->is_boolean()) return node->value<bool>();
  type_error(key, *node, "true or false");
  return std::nullopt;
}

std::optional<std::int64_t> table_reader::get_int(std::string_view key, std::int64_t min,
                                                  std::int64_t max) {
  const toml::node* node = lookup(key);
  if (!node) return std::nullopt;
  if (!node->is_integer()) {
    type_error(key, *node, "an integer");
    return std::nullopt;
  }
  auto v = *node->value<std::int64_t>();
  if (v < min || v > max) {
    error(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
                   std::to_string(v));
    return std::nullopt;
  }
  return v;
}

std::optional<duration> table_reader::get_duration(std::string_view key) {
  auto text = get_string(key);
  if (!text) return std::nullopt;
  std::string message;
  auto d = parse_duration(*text, &message);
  if (!d) error(key, message);
  return d;
}

std::optional<std::uint64_t> table_reader::get_size(std::string_view key) {
  auto text = get_string(key);
  if (!text) return std::nullopt;
  std::string message;
  auto s = parse_size(*text, &message);
  if (!s) error(key, message);
  return s;
}

std::optional<std::vector<std::string>> table_reader::get_string_list(std::string_view key) {
  const toml::node* node = lookup(key);
  if (!node) return std::nullopt;
  if (node->is_string()) return std::vector<std::string>{*node->value<std::string>()};
  const toml::array* array = node->as_array();
  if (!array) {
    type_error(key, *node, "a string or an array of strings");
    return std::nullopt;
  }
  std::vector<std::string> out;
  for (const auto& item : *array) {
    if (!item.is_string()) {
      const auto& where = item.source().begin;
      diags_.add({file_, static_cast<int>(where.line), static_cast<int>(where.column),
                  key_path(key),
                  std::string("expected strings in the array, got ") + type_name(item)});
      return std::nullopt;
    }
    out.push_back(*item.value<std::string>());
  }
  return out;
}

const toml::array* table_reader::get_table_array(std::string_view key) {
  const toml::node* node = lookup(key);
  if (!node) return nullptr;
  const toml::array* array = node->as_array();
  if (!array || !array->is_array_of_tables()) {
    type_error(key, *node, "an array of tables ([[" + std::string(key) + "]])");
    return nullptr;
  }
  return array;
}

const toml::table* table_reader::get_table(std::string_view key) {
  const toml::node* node = lookup(key);
  if (!node) return nullptr;
  if (const toml::table* t = node->as_table()) return t;
  type_error(key, *node, "a table");
  return nullptr;
}

void table_reader::finish() {
  std::vector<std::string> known(seen_.begin(), seen_.end());
  for (const auto& [key, node] : table_) {
    if (seen_.contains(key.str())) continue;
    std::string message = "unknown key";
    if (auto near = closest_match(std::string(key.str()), known); !near.empty())
      message += " (did you mean \"" + near + "\"?)";
    const auto& where = key.source().begin;
    diags_.add({file_, static_cast<int>(where.line), static_cast<int>(where.column),
                key_path(key.str()), message});
  }
}

std::string table_reader::choice_message(const std::string& got,
                                         const std::vector<std::string>& words) {
  std::string message = "invalid value \"" + got + "\" (expected ";
  for (size_t i = 0; i < words.size(); ++i) {
    if (i) message += i + 1 == words.size() ? " or " : ", ";
    message += "\"" + words[i] + "\"";
  }
  message += ")";
  if (auto near = closest_match(got, words); !near.empty())
    message += "; did you mean \"" + near + "\"?";
  return message;
}

void read_timeouts_table(table_reader& parent,
                         std::initializer_list<std::pair<const char*, duration*>> keys) {
  const toml::table* table = parent.get_table("timeouts");
  if (!table) return;
  table_reader r(*table, "timeouts", parent.file(), parent.diags());
  for (auto [key, slot] : keys)
    if (auto v = r.get_duration(key)) {
      if (v->count() <= 0)
        r.error(key, "must be longer than 0s");
      else
        *slot = *v;
    }
  r.finish();
}

std::string resolve_path(const std::string& config_file, const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  return (std::filesystem::path(config_file).parent_path() / path).string();
}

std::optional<toml::table> parse_toml_file(const std::string& file, diagnostics& diags) {
  // Read into one buffer (no stream buffers) that is wiped after parsing: the file may hold
  // an inline password.
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    diags.add({file, 0, 0, {}, "cannot open: " + std::string(std::strerror(errno))});
    return std::nullopt;
  }
  struct stat st {};
  std::string text;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) text.reserve(static_cast<std::size_t>(st.st_size));
  char chunk[4096];
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int saved = errno;
      ::close(fd);
      OPENSSL_cleanse(text.data(), text.size());
      diags.add({file, 0, 0, {}, "cannot read: " + std::string(std::strerror(saved))});
      return std::nullopt;
    }
    if (n == 0) break;
    text.append(chunk, static_cast<std::size_t>(n));
  }
  ::close(fd);
  OPENSSL_cleanse(chunk, sizeof chunk);
  std::optional<toml::table> table;
  try {
    table = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    diags.add({file,
               static_cast<int>(where.line),
               static_cast<int>(where.column),
               {},
               std::string(e.description())});
  }
  OPENSSL_cleanse(text.data(), text.size());
  return table;
}

void wipe_strings(toml::node& node) {
  if (auto* s = node.as_string()) {
    std::string& value = s->get();
    OPENSSL_cleanse(value.data(), value.size());
  } else if (auto* t = node.as_table()) {
    for (auto&& [key, child] : *t) wipe_strings(child);
  } else if (auto* a = node.as_array()) {
    for (auto& child : *a) wipe_strings(child);
  }
}

}  // namespace postern::conf
