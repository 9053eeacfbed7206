// The allocator nghttp2's sessions use: sizes kept, realloc copies, small
// blocks of a class reused.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "codecs/http2/session_memory.h"

namespace sluice {

TEST_CASE("session allocator: blocks of every size class, realloc, calloc", "[http2]") {
  nghttp2_mem* mem = http2::sessionAllocator();
  for (size_t size : {0, 1, 31, 32, 33, 255, 256, 257, 4096}) {
    INFO(size);
    auto* p = static_cast<unsigned char*>(mem->malloc(size, mem->mem_user_data));
    REQUIRE(p != nullptr);
    CHECK(reinterpret_cast<uintptr_t>(p) % alignof(std::max_align_t) == 0);
    std::memset(p, 0xab, size);
    // Growing keeps every byte; shrinking keeps those that fit.
    auto* grown = static_cast<unsigned char*>(mem->realloc(p, size + 300, mem->mem_user_data));
    REQUIRE(grown != nullptr);
    for (size_t i = 0; i < size; ++i) REQUIRE(grown[i] == 0xab);
    auto* shrunk = static_cast<unsigned char*>(mem->realloc(grown, size / 2, mem->mem_user_data));
    REQUIRE(shrunk != nullptr);
    for (size_t i = 0; i < size / 2; ++i) REQUIRE(shrunk[i] == 0xab);
    mem->free(shrunk, mem->mem_user_data);
  }
  auto* zeroed = static_cast<unsigned char*>(mem->calloc(10, 20, mem->mem_user_data));
  REQUIRE(zeroed != nullptr);
  for (size_t i = 0; i < 200; ++i) REQUIRE(zeroed[i] == 0);
  mem->free(zeroed, mem->mem_user_data);
  CHECK(mem->calloc(SIZE_MAX / 2, 4, mem->mem_user_data) == nullptr);  // the product overflows
  CHECK(mem->malloc(SIZE_MAX - 8, mem->mem_user_data) == nullptr);
  mem->free(nullptr, mem->mem_user_data);
  // A freed small block is handed out again for its class.
  void* a = mem->malloc(40, mem->mem_user_data);
  mem->free(a, mem->mem_user_data);
  void* b = mem->malloc(50, mem->mem_user_data);  // the same 33-64 byte class
  CHECK(b == a);
  mem->free(b, mem->mem_user_data);
}

}  // namespace sluice
