#include "core/timer.h"

#include <algorithm>

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
  // libuv counts the timeout from the loop's time: read once per iteration,
  // cut to whole milliseconds, and from a coarse clock on kernels where that
  // one ticks every millisecond. Armed late in a busy iteration, a timer would
  // fire early by as long as the iteration had run, and by up to a tick more.
  // Adding how far the precise clock (rounded up) is ahead of the loop's time
  // keeps the promise callers rely on (a fault's delay, a deadline): never
  // before `timeout` has passed.
  uint64_t ms = static_cast<uint64_t>(std::max<int64_t>(timeout.count(), 0));
  if (ms > 0) {
    const uint64_t precise_now_ms = (uv_hrtime() + 999'999) / 1'000'000;
    const uint64_t loop_now_ms = uv_now(handle_->uv.loop);
    if (precise_now_ms > loop_now_ms) ms += precise_now_ms - loop_now_ms;
  }
  uv_timer_start(&handle_->uv, onTimer, ms, 0);
}

void Timer::disable() { uv_timer_stop(&handle_->uv); }

bool Timer::enabled() const { return uv_is_active(reinterpret_cast<const uv_handle_t*>(&handle_->uv)) != 0; }

}  // namespace sluice
