#include "supervise.hpp"

#include "log.hpp"

namespace postern::cli {

std::string describe(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown exception";
  }
}

void supervised::operator()(const std::exception_ptr& e) const {
  if (!e) return;
  const std::string what = describe(e);
  if (session.empty())
    log::error(event, {{"error", what}});
  else
    log::error(event, {{"session", session}, {"error", what}});
  if (after) after(what);
}

}  // namespace postern::cli
