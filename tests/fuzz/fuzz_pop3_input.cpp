// What a POP3 server sends (status lines, CAPA, UIDL and LIST listings, TOP headers with their
// Date:) and what postern-fetch reads back from its state file: every parser must survive
// anything. The input is split into lines; the state file gets the whole input.
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fetch/first_run.hpp"
#include "fetch/pop3_protocol.hpp"
#include "fetch/state_store.hpp"

using namespace postern::fetch;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> lines;
  for (std::size_t pos = 0; pos <= input.size();) {
    auto nl = input.find('\n', pos);
    lines.emplace_back(input.substr(pos, nl == std::string_view::npos ? nl : nl - pos));
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  uid_listing uids;
  size_listing sizes;
  std::string error;
  for (const auto& line : lines) {
    parse_status(line);
    if (auto e = parse_uidl_line(line, &error)) uids.add(e->number, e->uid);
    if (auto e = parse_list_line(line, &error)) sizes.add(e->number, e->size);
    parse_message_date(line);
    parse_first_run(line, error);
  }
  parse_capa(lines);
  for (std::size_t i = 0; i < uids.size(); ++i) sizes.of(uids.number(i));

  static const std::string dir = [] {
    char name[] = "/tmp/postern-fuzz-state-XXXXXX";
    return std::string(::mkdtemp(name));
  }();
  const std::string file = dir + "/" + state_store::file_name("f@x");
  if (FILE* f = std::fopen(file.c_str(), "wb")) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  auto opened = state_store::open(dir, "f@x");
  if (opened.store) {
    opened.store->find("u1");
    opened.store->size();
  }
  return 0;
}
