#include "insecure.hpp"

namespace postern::conf {

void add_insecure_settings(const mailbox& m, const std::string& file,
                           std::vector<insecure_setting>& out) {
  if (m.tls.verify == verify_mode::none)
    out.push_back({"mailbox", m.address, "verify = \"none\"",
                   "the server's certificate is NOT verified: the password and mail can be "
                   "captured on the path",
                   file});
  if (m.allow_cleartext)
    out.push_back({"mailbox", m.address, "allow_cleartext = true",
                   "credentials and mail may cross the network unencrypted", file});
}

std::vector<insecure_setting> insecure_settings(const tunnel_config& config) {
  std::vector<insecure_setting> out;
  for (const auto& s : config.services) {
    if (s.mode == tunnel_mode::client && s.tls.verify == verify_mode::none)
      out.push_back({"service", s.name, "verify = \"none\"",
                     s.tls.pin_sha256.empty()
                         ? "server certificates are NOT verified: anyone on the path can "
                           "impersonate the server"
                         : "only pin_sha256 is checked, not the chain or host name",
                     config.file});
    if (s.allow_cleartext)
      out.push_back({"service", s.name, "allow_cleartext = true",
                     "plaintext side may cross the network", config.file});
  }
  return out;
}

std::vector<insecure_setting> insecure_settings(const forwarder_config& config) {
  std::vector<insecure_setting> out;
  for (const auto& m : config.registry.mailboxes)
    add_insecure_settings(m, config.registry.file, out);
  if (config.smarthost) add_insecure_settings(*config.smarthost, config.file, out);
  return out;
}

std::vector<insecure_setting> insecure_settings(const fetch_config& config) {
  std::vector<insecure_setting> out;
  for (const auto& m : config.registry.mailboxes)
    if (m.fetch) add_insecure_settings(m, config.registry.file, out);
  add_insecure_settings(config.delivery, config.file, out);
  return out;
}

}  // namespace postern::conf
