// PROXY protocol parser: never reads past the input, never claims more than it has, and
// what it parses builds back into a header that parses to the same addresses.
#include <cstdlib>

#include "tunnel/proxy_protocol.hpp"

using namespace postern::tunnel;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto r = parse_proxy_header({data, size});
  if (r.status != proxy_parse_status::done) return 0;
  if (r.consumed > size) std::abort();
  for (const std::string& wire : {build_proxy_v1(r.addresses), build_proxy_v2(r.addresses)}) {
    auto again =
        parse_proxy_header({reinterpret_cast<const std::uint8_t*>(wire.data()), wire.size()});
    if (again.status != proxy_parse_status::done || again.consumed != wire.size()) std::abort();
    if (again.addresses.source() != r.addresses.source()) std::abort();
  }
  return 0;
}
