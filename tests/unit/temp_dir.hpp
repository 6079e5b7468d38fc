#pragma once
// A directory of its own for one test, removed afterwards.
#include <unistd.h>

#include <filesystem>
#include <string>

namespace postern::test {

struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::string name = "/tmp/postern-test-XXXXXX";
    path = ::mkdtemp(name.data());
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

}  // namespace postern::test
