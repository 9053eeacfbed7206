// ByteSpan: a view of bytes owned elsewhere, for gather writes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice {

struct ByteSpan {
  const uint8_t* data;
  size_t len;
};

}  // namespace sluice
