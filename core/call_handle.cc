#include "core/call_handle.h"

#include <utility>

#include <fmt/format.h>

#include "core/dispatcher.h"
#include "core/stats.h"
#include "core/stream_context.h"
#include "core/timer.h"
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

void CallSlots::run(Id id, const std::function<void()>& work, std::string_view what, std::string_view filter) {
  if (find(id) == nullptr) return;  // the call ended: dropped
  try {
    work();
    if (StreamContext* call = find(id); call != nullptr && !filter.empty()) call->filterWorkDone(filter);
    return;
  } catch (...) {
    logUserCodeFailure(filter.empty() ? std::string(what) : fmt::format("filter \"{}\" in {}", filter, what),
                       currentExceptionText());
  }
  // Like a hook that throws: the call ends rather than wait, paused, for its
  // deadline. Unless the work ended it before throwing.
  if (StreamContext* call = find(id)) {
    call->sendLocalReply(LocalReplyReason::FilterError, StatusCode::Internal,
                         filter.empty() ? fmt::format("{} failed", what) : fmt::format("filter \"{}\" failed", filter));
  }
}

void CallHandle::post(std::function<void()> work) const {
  if (dispatcher_ != nullptr) dispatcher_->postToCall(id_, std::move(work), filter_);
}

void CallHandle::run(const std::function<void()>& work, std::string_view what) const {
  if (dispatcher_ != nullptr) dispatcher_->callSlots().run(id_, work, what, filter_);
}

TimerPtr StreamContext::timer(std::function<void()> on_fire) {
  return std::make_unique<Timer>(dispatcher(), [call = handle(), on_fire = std::move(on_fire)] {
    call.run(on_fire, "a timer a filter armed for its call (StreamContext::timer)");
  });
}

}  // namespace sluice
