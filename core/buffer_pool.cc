#include "core/buffer_pool.h"

#include <vector>

namespace sluice::buffer_pool {
namespace {

// Enough for the messages in flight on a busy worker; large buffers are not
// kept, so an 8 MiB message does not pin 8 MiB per pooled slot.
constexpr size_t kMaxPooled = 256;
constexpr size_t kMaxPooledCapacity = 256 * 1024;

struct Pool {
  std::vector<std::string> free;
  Pool() { free.reserve(kMaxPooled); }
};

Pool& pool() {
  thread_local Pool p;
  return p;
}

}  // namespace

std::string acquire(size_t size_hint) {
  // An empty message needs no buffer; a pooled one would sit idle in it for
  // as long as the message is queued.
  if (size_hint == 0) return std::string();
  Pool& p = pool();
  // Most recently released first: it is warm in cache and likely the right size.
  for (size_t i = p.free.size(); i > 0; --i) {
    if (p.free[i - 1].capacity() >= size_hint) {
      std::string s = std::move(p.free[i - 1]);
      p.free[i - 1] = std::move(p.free.back());
      p.free.pop_back();
      return s;
    }
  }
  std::string s;
  s.reserve(size_hint);
  return s;
}

void release(std::string&& buffer) {
  if (buffer.capacity() > kMaxPooledCapacity || buffer.capacity() <= 15) return;  // too big, or not heap
  Pool& p = pool();
  if (p.free.size() >= kMaxPooled) return;
  buffer.clear();
  p.free.push_back(std::move(buffer));
}

}  // namespace sluice::buffer_pool
