#include "core/byte_tally.h"

#include "core/dispatcher.h"

namespace sluice {

void ByteTally::tellWatcher() {
  // A flush, not a call: the holder taking bytes off may be deep in its own
  // work (writing to a backend), and the watcher's answer to room (more
  // data through the filters) must not run inside it.
  watcher_->scheduleFlush();
}

}  // namespace sluice
