#include "core/call_handle.h"

#include <utility>

#include "core/dispatcher.h"

namespace sluice {

CallSlots::Id CallSlots::open() {
  uint32_t slot;
  if (free_.empty()) {
    slot = static_cast<uint32_t>(generations_.size());
    generations_.push_back(0);
  } else {
    slot = free_.back();
    free_.pop_back();
  }
  return {slot, ++generations_[slot]};
}

void CallSlots::close(Id id) {
  if (!live(id)) return;
  ++generations_[id.slot];
  free_.push_back(id.slot);
}

void CallHandle::post(std::function<void()> work) const {
  if (dispatcher_ == nullptr) return;
  // Checked on the worker, where calls end: no race with the call ending.
  dispatcher_->post([slots = slots_, id = id_, work = std::move(work)] {
    if (slots->live(id)) work();
  });
}

}  // namespace sluice
