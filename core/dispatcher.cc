#include "core/dispatcher.h"

#include <sched.h>

#include <algorithm>

#include <spdlog/spdlog.h>
#include <uv.h>

#include "core/stats.h"
#include "core/user_code.h"

namespace sluice {
namespace {

void onPrepare(uv_prepare_t* h) noexcept { static_cast<Dispatcher*>(h->data)->drainPostedWork(); }
void onCheck(uv_check_t* h) noexcept { static_cast<Dispatcher*>(h->data)->drainPostedWork(); }
void onAsync(uv_async_t* h) noexcept { static_cast<Dispatcher*>(h->data)->runPosted(); }
void freeHandle(uv_handle_t* h) noexcept { delete reinterpret_cast<uv_any_handle*>(h); }

// What uv_walk finds on a loop, for deciding whether it has work left.
struct HandleCensus {
  size_t closing = 0;
  size_t open = 0;             // not closing
  size_t alive_non_timer = 0;  // active and referenced, other than timers
};
void countHandle(uv_handle_t* h, void* arg) noexcept {
  auto* census = static_cast<HandleCensus*>(arg);
  if (uv_is_closing(h) != 0) {
    ++census->closing;
    return;
  }
  ++census->open;
  if (h->type != UV_TIMER && uv_is_active(h) != 0 && uv_has_ref(h) != 0) ++census->alive_non_timer;
}
HandleCensus takeCensus(uv_loop_t* loop) {
  HandleCensus census;
  uv_walk(loop, countHandle, &census);
  return census;
}

// A sched_yield that finds no other runnable thread returns in about a
// microsecond (a syscall and a look at the run queue); one that lets another
// thread run takes at least that thread's slice of work, tens of microseconds.
constexpr uint64_t kAnotherThreadRanNs = 5000;

// Offers the core to any other runnable thread; true when one took it.
bool yieldCore() {
  uint64_t start = uv_hrtime();
  sched_yield();
  return uv_hrtime() - start >= kAnotherThreadRanNs;
}

}  // namespace

Flushable::~Flushable() {
  if (flush_scheduled_) dispatcher_.cancelFlush(this);
}

void Flushable::scheduleFlush() {
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  dispatcher_.addFlush(this);
}

Dispatcher::Dispatcher()
    : loop_(new uv_loop_t),
      prepare_(&(new uv_any_handle)->prepare),
      check_(&(new uv_any_handle)->check),
      async_(&(new uv_any_handle)->async) {
  uv_loop_init(loop_);
  // 64 KiB: small enough to stay in the core's cache between the kernel's copy
  // into it and ours out of it. Streaming through the gateway ran ~10% faster
  // (and cost ~8% less CPU per MB) than with 256 KiB reads, which only saved
  // syscalls (libuv reads again at once when a read fills the buffer).
  read_buffer_.resize(64 * 1024);
  loop_->data = &read_buffer_;
  uv_prepare_init(loop_, prepare_);
  prepare_->data = this;
  uv_prepare_start(prepare_, onPrepare);
  uv_unref(reinterpret_cast<uv_handle_t*>(prepare_));
  uv_check_init(loop_, check_);
  check_->data = this;
  uv_check_start(check_, onCheck);
  uv_unref(reinterpret_cast<uv_handle_t*>(check_));
  uv_async_init(loop_, async_, onAsync);
  async_->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(async_));  // posted work alone does not keep a loop alive
}

Dispatcher::~Dispatcher() {
  drainPostedWork();
  uv_close(reinterpret_cast<uv_handle_t*>(prepare_), freeHandle);
  uv_close(reinterpret_cast<uv_handle_t*>(check_), freeHandle);
  uv_close(reinterpret_cast<uv_handle_t*>(async_), freeHandle);
  // Let every close callback run (ours and any handle closed by owners
  // above), and requests in flight (a host name lookup) finish: their
  // completions reach the loop. A handle still open is not waited for.
  while (closingHandlesOrRequests()) uv_run(loop_, UV_RUN_ONCE);
  const HandleCensus left = takeCensus(loop_);
  if (left.open > 0) {
    // Its owner (a filter's timer outliving the gateway) would touch the loop
    // when it goes: the loop is left allocated rather than freed under it.
    spdlog::warn("an event loop ends with {} handle(s) still open (a filter's timer not destroyed?)", left.open);
    return;
  }
  uv_loop_close(loop_);
  delete loop_;
}

bool Dispatcher::closingHandlesOrRequests() const {
  return loop_->active_reqs.count > 0 || takeCensus(loop_).closing > 0;
}

bool Dispatcher::onlyTimersLeft() const {
  if (loop_->active_reqs.count > 0) return false;
  const HandleCensus census = takeCensus(loop_);
  return census.alive_non_timer == 0 && census.closing == 0;
}

void Dispatcher::deferredDelete(DeferredDeletablePtr object) {
  delete_queue_.push_back(std::move(object));
}

void Dispatcher::run() {
  stop_requested_ = false;
  uint32_t polls_left = 0;
  for (;;) {
    const bool spinning = polls_left > 0;
    const uint64_t batches = flush_batches_;
    // UV_RUN_ONCE sleeps until an event or a timer is due; UV_RUN_NOWAIT only polls.
    const int alive = uv_run(loop_, spinning ? UV_RUN_NOWAIT : UV_RUN_ONCE);
    if (alive == 0 || stop_requested_ || (end_when_only_timers_ && onlyTimersLeft())) return;
    const bool worked = flush_batches_ != batches;
    if (spinning && loop_stats_ != nullptr) {
      loop_stats_->spin_polls.inc();
      if (worked) loop_stats_->spin_polls_with_work.inc();
    }
    if (worked) {
      polls_left = spin_polls_;
    } else if (polls_left > 0) {
      --polls_left;
      if (!yieldCore()) polls_left = 0;  // nobody else will produce our next event sooner
    }
  }
}

void Dispatcher::setIdleSpin(uint32_t polls, LoopStats* stats) {
  spin_polls_ = polls;
  loop_stats_ = stats;
}

void Dispatcher::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    posted_.push_back({std::move(fn), std::nullopt, {}});
  }
  uv_async_send(async_);
}

void Dispatcher::postToCall(CallSlots::Id call, std::function<void()> fn, std::string_view filter) {
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    posted_.push_back({std::move(fn), call, filter});
  }
  uv_async_send(async_);
}

void Dispatcher::runPosted() {
  std::vector<PostedWork> work;
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    work.swap(posted_);
  }
  // Posted by filters too, from their own threads: one that throws is logged.
  for (auto& w : work) {
    if (w.call) {
      call_slots_.run(*w.call, w.fn, "work a filter posted to its call (CallHandle::post)", w.filter);
    } else {
      runUserCode("work posted to a worker (Dispatcher::post)", w.fn);
    }
  }
}

void Dispatcher::stop() {
  stop_requested_ = true;
  uv_stop(loop_);
}

void Dispatcher::cancelFlush(Flushable* f) {
  auto it = std::find(flush_queue_.begin(), flush_queue_.end(), f);
  if (it != flush_queue_.end()) *it = nullptr;
}

void Dispatcher::drainPostedWork() {
  if (draining_) return;
  if (!flush_queue_.empty()) ++flush_batches_;
  draining_ = true;
  // Deleting can schedule flushes (a reset stream tells its peer) and flushing
  // can queue deletions (a write error closes a connection): repeat until quiet.
  // The spare vectors keep their capacity: no allocation per event batch.
  while (!flush_queue_.empty() || !delete_queue_.empty()) {
    flushing_.swap(flush_queue_);
    for (size_t i = 0; i < flushing_.size(); ++i) {
      Flushable* f = flushing_[i];
      if (f == nullptr) continue;
      f->flush_scheduled_ = false;
      f->flush();
    }
    flushing_.clear();
    deleting_.swap(delete_queue_);
    deleting_.clear();
  }
  draining_ = false;
}

}  // namespace sluice
