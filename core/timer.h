// Timer: a one-shot timer on a Dispatcher's loop, owned by whoever arms it.
//
// The libuv handle lives apart from the Timer and is freed in its close
// callback, so a Timer may be destroyed at any time, even from its own callback.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

struct uv_timer_s;

namespace sluice {

class Dispatcher;

class Timer {
 public:
  Timer(Dispatcher& dispatcher, std::function<void()> on_fire);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void enable(std::chrono::milliseconds timeout);
  void disable();
  bool enabled() const;

  void fire() { on_fire_(); }  // called by the libuv bridge only

 private:
  uv_timer_s* handle_;
  std::function<void()> on_fire_;
};
using TimerPtr = std::unique_ptr<Timer>;

}  // namespace sluice
