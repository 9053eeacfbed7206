#include "core/timer.h"

#include <uv.h>

#include "core/dispatcher.h"

namespace sluice {
namespace {

void onTimer(uv_timer_t* h) noexcept {
  if (h->data != nullptr) static_cast<Timer*>(h->data)->fire();
}
void freeHandle(uv_handle_t* h) noexcept { delete reinterpret_cast<uv_timer_t*>(h); }

}  // namespace

Timer::Timer(Dispatcher& dispatcher, std::function<void()> on_fire)
    : handle_(new uv_timer_t), on_fire_(std::move(on_fire)) {
  uv_timer_init(dispatcher.loop(), handle_);
  handle_->data = this;
}

Timer::~Timer() {
  handle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle_), freeHandle);
}

void Timer::enable(std::chrono::milliseconds timeout) {
  uv_timer_start(handle_, onTimer, static_cast<uint64_t>(std::max<int64_t>(timeout.count(), 0)), 0);
}

void Timer::disable() { uv_timer_stop(handle_); }

bool Timer::enabled() const { return uv_is_active(reinterpret_cast<uv_handle_t*>(handle_)) != 0; }

}  // namespace sluice
