#include "core/call_handle.h"

#include <utility>

#include "core/dispatcher.h"
#include "core/stats.h"
#include "core/stream_context.h"
#include "core/user_code.h"

namespace sluice {

CallSlots::Id CallSlots::open(StreamContext& call) {
  uint32_t slot;
  if (free_.empty()) {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  } else {
    slot = free_.back();
    free_.pop_back();
  }
  slots_[slot].call = &call;
  return {slot, ++slots_[slot].generation};
}

void CallSlots::close(Id id) {
  if (find(id) == nullptr) return;
  ++slots_[id.slot].generation;
  slots_[id.slot].call = nullptr;
  free_.push_back(id.slot);
}

void CallSlots::run(Id id, const std::function<void()>& work) {
  if (find(id) == nullptr) return;  // the call ended: dropped
  if (runUserCode("work a filter posted to its call (CallHandle::post)", work)) return;
  // Like a hook that throws: the call ends rather than wait, paused, for its
  // deadline. Unless the work ended it before throwing.
  if (StreamContext* call = find(id)) {
    call->sendLocalReply(LocalReplyReason::FilterError, StatusCode::Internal,
                         "work a filter posted to the call (CallHandle::post) failed");
  }
}

void CallHandle::post(std::function<void()> work) const {
  if (dispatcher_ != nullptr) dispatcher_->postToCall(id_, std::move(work));
}

}  // namespace sluice
