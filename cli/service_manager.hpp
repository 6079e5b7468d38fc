#pragma once
/// systemd glue: readiness notification (Type=notify) and socket activation. Every call is a
/// no-op outside systemd, so the programs run the same from a shell.

#include <map>
#include <string>

namespace postern::cli {

void notify_ready(const std::string& status);
void notify_reloading();
void notify_stopping();

/// Sockets passed by systemd (LISTEN_FDS), by FileDescriptorName=; taken once per process.
const std::map<std::string, int>& activated_sockets();

}  // namespace postern::cli
