#include "core/timer.h"

#include <uv.h>

#include "core/dispatcher.h"
#include "core/user_code.h"

namespace sluice {

struct Timer::Handle {
  uv_timer_t uv;  // its data points back here
  std::function<void()> on_fire;
  bool firing = false;
};

namespace {

void onTimer(uv_timer_t* h) noexcept {
  auto* handle = static_cast<Timer::Handle*>(h->data);
  handle->firing = true;
  runUserCode("a timer callback", handle->on_fire);
  handle->firing = false;  // the handle outlives its Timer until closed
}
void freeHandle(uv_handle_t* h) noexcept { delete static_cast<Timer::Handle*>(h->data); }

}  // namespace

Timer::Timer(Dispatcher& dispatcher, std::function<void()> on_fire) : handle_(new Handle{{}, std::move(on_fire)}) {
  uv_timer_init(dispatcher.loop(), &handle_->uv);
  handle_->uv.data = handle_;
}

Timer::~Timer() {
  // Stops it (a closing handle never fires). The callback goes now, with the
  // Timer, unless it is the one running: then when libuv is done with the
  // handle, after it returns.
  if (!handle_->firing) handle_->on_fire = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&handle_->uv), freeHandle);
}

void Timer::enable(std::chrono::milliseconds timeout) {
  uv_timer_start(&handle_->uv, onTimer, static_cast<uint64_t>(std::max<int64_t>(timeout.count(), 0)), 0);
}

void Timer::disable() { uv_timer_stop(&handle_->uv); }

bool Timer::enabled() const { return uv_is_active(reinterpret_cast<const uv_handle_t*>(&handle_->uv)) != 0; }

}  // namespace sluice
