#pragma once
/// Settings that weaken security by the admin's explicit choice (verification off, cleartext
/// allowed). Every start and reload repeats them as warnings, so the choice is never forgotten;
/// `postern check` prints them too.

#include <string>
#include <vector>

#include "conf/fetch_config.hpp"
#include "conf/forwarder_config.hpp"
#include "conf/tunnel_config.hpp"

namespace postern::conf {

struct insecure_setting {
  std::string owner_kind;  ///< "service" or "mailbox": the log field naming the owner
  std::string owner;       ///< the service name or mailbox address
  std::string setting;     ///< as written in the file: `verify = "none"`
  std::string effect;      ///< what it exposes, in words
  std::string file;        ///< the file it is written in
};

std::vector<insecure_setting> insecure_settings(const tunnel_config& config);
std::vector<insecure_setting> insecure_settings(const forwarder_config& config);
/// The fetched mailboxes and the [delivery] target.
std::vector<insecure_setting> insecure_settings(const fetch_config& config);
/// One mailbox (or pseudo-mailbox: the smarthost, fetch's [delivery]) written in `file`.
void add_insecure_settings(const mailbox& m, const std::string& file,
                           std::vector<insecure_setting>& out);

}  // namespace postern::conf
