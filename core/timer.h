// Timer: a one-shot timer on a Dispatcher's loop, owned by whoever arms it.
//
// The libuv handle and the callback live apart from the Timer and are freed in
// the handle's close callback, so a Timer may be destroyed at any time, even
// from its own callback: one that ends the call (sendLocalReply) destroys its
// filter's timers in onStreamDone, and the lambda running (its captures) must
// outlive that. A callback that throws is logged (core/user_code.h).
#pragma once

#include <chrono>
#include <functional>
#include <memory>


namespace sluice {

class Dispatcher;

class Timer {
 public:
  Timer(Dispatcher& dispatcher, std::function<void()> on_fire);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Fires once, never before `timeout` has passed since this call (0: on the
  // loop's next turn). Enabling an armed timer re-arms it.
  void enable(std::chrono::milliseconds timeout);
  void disable();
  bool enabled() const;

  struct Handle;  // the libuv handle and the callback (timer.cc)

 private:
  Handle* handle_;
};
using TimerPtr = std::unique_ptr<Timer>;

}  // namespace sluice
