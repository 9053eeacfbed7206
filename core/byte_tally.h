// ByteTally: one count of bytes that several holders add to and take from
// (what a connection's calls hold queued), with an optional watcher told
// when it falls, so something waiting for room can look again.
#pragma once

#include <cstddef>

namespace sluice {

class Flushable;

class ByteTally {
 public:
  size_t bytes() const { return bytes_; }
  void add(size_t n) { bytes_ += n; }
  void sub(size_t n) {
    bytes_ -= n;
    if (watcher_ != nullptr && n != 0) tellWatcher();
  }
  // `watcher` (may be null: none) is flushed at the end of any event batch
  // in which the count fell.
  void setWatcher(Flushable* watcher) { watcher_ = watcher; }

 private:
  void tellWatcher();
  size_t bytes_ = 0;
  Flushable* watcher_ = nullptr;
};

}  // namespace sluice
