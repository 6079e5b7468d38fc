#include "client_auth.hpp"

#include <crypt.h>

#include <fstream>

#include <openssl/mem.h>

#include "conf/secret.hpp"

namespace postern::forwarder {

std::optional<client_users> client_users::load(const std::string& path, std::string& error) {
  if (auto problem = conf::check_private_file(path); !problem.empty()) {
    error = problem;
    return std::nullopt;
  }
  std::ifstream in(path);
  if (!in) {
    error = path + ": cannot read";
    return std::nullopt;
  }
  client_users users;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    auto colon = line.find(':');
    std::string hash = colon == std::string::npos ? "" : line.substr(colon + 1);
    // Only modern crypt(3) schemes: "$id$...". A bare word would be a cleartext password.
    if (colon == 0 || hash.size() < 4 || hash[0] != '$') {
      error = path + ":" + std::to_string(number) +
              ": expected user:HASH with a crypt(3) hash such as `openssl passwd -6` prints";
      return std::nullopt;
    }
    users.hashes_[line.substr(0, colon)] = hash;
  }
  return users;
}

bool client_users::verify(const std::string& user, const std::string& password) const {
  auto it = hashes_.find(user);
  // Hash something even for an unknown user, so timing does not tell which users exist.
  const std::string& hash =
      it != hashes_.end() ? it->second : std::string("$6$postern$unknown-user-placeholder");
  crypt_data data{};
  const char* out = crypt_r(password.c_str(), hash.c_str(), &data);
  bool ok = it != hashes_.end() && out && out[0] != '*' && hash == out;
  OPENSSL_cleanse(&data, sizeof data);
  return ok;
}

std::optional<plain_credentials> parse_plain_response(std::string_view decoded) {
  auto first = decoded.find('\0');
  if (first == std::string_view::npos) return std::nullopt;
  auto second = decoded.find('\0', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  plain_credentials c;
  c.user = decoded.substr(first + 1, second - first - 1);
  c.password = decoded.substr(second + 1);
  if (c.user.empty()) return std::nullopt;
  return c;
}

}  // namespace postern::forwarder
