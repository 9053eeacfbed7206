// BufferPool: recycled message buffers, one pool per thread (so per worker,
// with no locks). A message payload is taken from the pool when its first
// byte arrives and given back once nghttp2 has sent it on, so a steady stream
// of messages allocates nothing. The pool keeps a bounded number of buffers
// of bounded size; anything beyond is freed as usual.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sluice::buffer_pool {

// An empty string with capacity for at least `size_hint` bytes when the pool
// has one that large (a fresh string otherwise).
std::string acquire(size_t size_hint);
// Hands `buffer` back for reuse (its contents are discarded).
void release(std::string&& buffer);
// The heap bytes (as allocation_counter::usableSize counts them) of the
// buffers every thread's pool keeps (at most 64 MiB of capacity per
// thread): memory the heap counts as in use, but that no call holds.
uint64_t pooledBytes();

}  // namespace sluice::buffer_pool
