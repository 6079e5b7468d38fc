#include "service_manager.hpp"

#include <ctime>

#include <systemd/sd-daemon.h>

namespace postern::cli {

void notify_ready(const std::string& status) {
  sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str());
}

void notify_reloading() {
  // systemd (Type=notify-reload) wants the monotonic time with RELOADING=1.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  auto usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
              static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
  sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", usec);
}

void notify_stopping() { sd_notify(0, "STOPPING=1"); }

const std::map<std::string, int>& activated_sockets() {
  static const std::map<std::string, int> sockets = [] {
    std::map<std::string, int> out;
    char** names = nullptr;
    int n = sd_listen_fds_with_names(1, &names);
    for (int i = 0; i < n; ++i) {
      std::string name = names && names[i] ? names[i] : "unknown";
      out.emplace(name, SD_LISTEN_FDS_START + i);
    }
    if (names) {
      for (int i = 0; i < n; ++i) free(names[i]);
      free(names);
    }
    return out;
  }();
  return sockets;
}

}  // namespace postern::cli
