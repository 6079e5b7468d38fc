#pragma once
/// Per-thread pool of large I/O buffers. Connections borrow one only while bytes are in
/// flight and give it back as soon as it is empty, so an idle connection holds none.

#include <cstddef>
#include <memory>
#include <vector>

namespace postern::net {

class buffer_pool {
 public:
  /// Room for 256 KiB of payload plus the TLS record overhead of 16 records.
  static constexpr std::size_t block_size = 256 * 1024 + 8 * 1024;

  static char* get() {
    auto& free = free_list();
    if (free.empty()) return new char[block_size];
    char* b = free.back().release();
    free.pop_back();
    return b;
  }

  static void put(char* block) {
    auto& free = free_list();
    if (free.size() < max_free)
      free.emplace_back(block);
    else
      delete[] block;
  }

 private:
  static constexpr std::size_t max_free = 16;
  static std::vector<std::unique_ptr<char[]>>& free_list() {
    thread_local std::vector<std::unique_ptr<char[]>> blocks;
    return blocks;
  }
};

}  // namespace postern::net
