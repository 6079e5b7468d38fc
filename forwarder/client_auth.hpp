#pragma once
/// SMTP AUTH for the forwarder's own clients (RFC 4954): users and crypt(3) password hashes
/// from `auth_users_file` ("user:$6$..." or "user:$y$..." lines, as `openssl passwd -6` or
/// `mkpasswd` print them), checked without ever storing or logging a cleartext password.

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace postern::forwarder {

class client_users {
 public:
  /// Loads the file (it must be private); nullopt + error naming the line on failure.
  static std::optional<client_users> load(const std::string& path, std::string& error);
  /// True when `password` matches the user's hash.
  [[nodiscard]] bool verify(const std::string& user, const std::string& password) const;
  [[nodiscard]] bool empty() const { return hashes_.empty(); }

 private:
  std::map<std::string, std::string, std::less<>> hashes_;
};

/// Splits the decoded PLAIN response "authzid\0user\0password"; nullopt when malformed.
struct plain_credentials {
  std::string user;
  std::string password;
};
std::optional<plain_credentials> parse_plain_response(std::string_view decoded);

}  // namespace postern::forwarder
