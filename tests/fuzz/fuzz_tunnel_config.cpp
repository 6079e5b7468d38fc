// Configuration loader: any file contents either load or produce diagnostics, each with a
// message; nothing crashes, nothing is silently accepted half-way.
#include <unistd.h>
#include <cstdio>
#include <cstdlib>

#include "conf/tunnel_config.hpp"

using namespace postern::conf;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static std::string path = [] {
    char name[] = "/tmp/postern-fuzz-XXXXXX";
    int fd = ::mkstemp(name);
    ::close(fd);
    return std::string(name);
  }();
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  diagnostics d;
  auto config = load_tunnel_config(path, d);
  if (config.has_value() == !d.empty()) std::abort();
  for (const auto& item : d.items())
    if (item.message.empty()) std::abort();
  return 0;
}
