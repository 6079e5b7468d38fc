#include "program.hpp"

#include <csignal>

#include "cli/core_dumps.hpp"

namespace postern::cli {

void start_program() {
  forbid_core_dumps();
  std::signal(SIGPIPE, SIG_IGN);
}

std::optional<conf::duration> parse_grace(const std::string& text, const char* program) {
  std::string error;
  auto grace = conf::parse_duration(text, &error);
  if (!grace) std::cerr << program << ": --grace: " << error << "\n";
  return grace;
}

}  // namespace postern::cli
