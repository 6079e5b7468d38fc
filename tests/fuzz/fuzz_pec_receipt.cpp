// Retrieved messages are whatever the network delivered: the PEC classifier (headers, MIME
// walk, base64/quoted-printable, daticert.xml) must survive any of them.
#include <string_view>

#include "fetch/pec_receipt.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view message(reinterpret_cast<const char*>(data), size);
  postern::fetch::classify_message(message);
  std::string problem;
  postern::fetch::parse_daticert(message, problem);
  return 0;
}
