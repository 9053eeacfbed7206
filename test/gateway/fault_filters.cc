#include "test/gateway/fault_filters.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "core/config_errors.h"
#include "core/dispatcher.h"
#include "core/json_reader.h"
#include "core/stream_context.h"
#include "core/timer.h"

namespace sluice::test {
namespace {

// Values of x-test-fault:
//   create, create_non_std   the factory throws (a std::exception, an int)
//   no_filter                the factory returns nullptr: the filter sits out
//   request_headers, request_message, request_end,
//   response_headers, response_message, response_trailers, stream_done
//                            that hook throws
//   deny_after_hold          a timer ends the call, then reads its captures
//   double_continue          a timer resumes the call twice
//   timer_throw              a timer resumes the call, then throws
//   call_timer_throw         a timer of the call's (StreamContext::timer)
//                            throws instead of resuming it
//   call_timer_deny          a timer of the call's ends it, then reads its captures
//   posted_throw             work posted to the dispatcher throws
//   answer_itself            the filter answers: one message (payload "self"),
//                            then OK, without setting response headers; every
//                            entry whose trailer hook the reply passes adds
//                            x-test-faults-hook: answerer (the one that
//                            answered) or other
//   bad_request_value, bad_request_name, bad_request_te, bad_trailer_value
//                            a hook sets a field HTTP/2 cannot carry (CR LF
//                            in a request value, "Bad Key", te: gzip, a
//                            trailer value ending in LF)
//   bad_value_while_paused   a timer of the call sets a value with a NUL,
//                            then resumes it
//   inject_copy              each response message it sees, it injects a
//                            message "copy" ahead of it (at most 100); the
//                            trailer x-test-faults-seen counts the messages
//                            its hook saw
//   inject_summary           its trailer hook injects a message "summary"
//                            ahead of the trailers
//   end_after_first_message  its first response message hook ends the
//                            stream (grpc-status 0) after that message
//   early_message            its request-headers hook sends a message
//                            "early" to the client and lets the call go on
//   answer_without_status    answers itself (one message) with trailers
//                            that carry no grpc-status
//   trailer_status_removed, trailer_status_garbage, trailer_status_twice
//                            its trailer hook removes grpc-status, sets it
//                            to "abc", or adds a second one ("13")
//   local_reply_bad_extra, local_reply_status_extra
//                            its request-headers hook ends the call with
//                            PERMISSION_DENIED and an extra trailer holding
//                            CR LF, or one setting grpc-status
//   done_bad_trailer         its onStreamDone sets a trailer value holding
//                            LF (after the call ended)
//   grow_request, grow_response
//                            its message hook appends 4096 bytes to each
//                            request (response) message
//   done_encode_trailers     its onStreamDone sets grpc-status 0 and encodes
//                            the response trailers again (after the call
//                            ended)
//   timer_bad_trailer        its request-headers hook lets the call go on
//                            and arms a timer of the call (10 ms) that sets
//                            a trailer value holding LF
//   state_uses_factory       its request-headers hook stores a filter state
//                            whose destructor reads its factory (as a state
//                            giving back a share of the factory's would):
//                            the process aborts if the factory is gone
// Calls it sees without a fault get the trailer x-test-faults: seen, and
// x-test-faults-status: the code and message ctx.status() and
// ctx.statusMessage() give in onResponseTrailers.
constexpr std::string_view kFaultHeader = "x-test-fault";
constexpr std::string_view kGateHeader = "x-test-gate";

// Written by its destructor: reading it afterwards finds kDead (or whatever
// reused the memory), never kAlive.
struct Canary {
  static constexpr uint64_t kAlive = 0x5AFE5AFE5AFE5AFEull;
  static constexpr uint64_t kDead = 0xDEADDEADDEADDEADull;
  uint64_t word = kAlive;
  Canary() = default;
  Canary(const Canary&) = default;
  ~Canary() { word = kDead; }
};

// The FaultFactory objects alive, by address: what a filter state may check
// without reading a factory that may be gone.
struct LiveFactories {
  static void add(const void* factory) {
    std::lock_guard lock(mutex());
    set().insert(factory);
  }
  static void remove(const void* factory) {
    std::lock_guard lock(mutex());
    set().erase(factory);
  }
  static bool alive(const void* factory) {
    std::lock_guard lock(mutex());
    return set().count(factory) != 0;
  }
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::set<const void*>& set() {
    static std::set<const void*> s;
    return s;
  }
};

// Looks for its factory when the call's filter state goes.
struct FactoryCheck : FilterState {
  explicit FactoryCheck(const void* factory) : factory(factory) {}
  ~FactoryCheck() override {
    if (LiveFactories::alive(factory)) return;
    std::fputs("test_faults: a call's filter state outlived its filter factory\n", stderr);
    std::abort();
  }
  const void* factory;
};

void throwIf(bool cond, std::string_view where) {
  if (cond) throw std::runtime_error("test_faults: thrown in " + std::string(where));
}

class FaultFilter : public Filter {
 public:
  FaultFilter(std::string fault, const void* factory) : fault_(std::move(fault)), factory_(factory) {}

  FilterStatus onRequestHeaders(StreamContext& ctx) override {
    throwIf(fault_ == "request_headers", "onRequestHeaders");
    if (fault_ == "state_uses_factory") {
      ctx.setFilterState("test_faults.factory_check", std::make_unique<FactoryCheck>(factory_));
    }
    if (fault_ == "answer_itself") {
      // A filter that answers the call itself, message first, no headers.
      answered_ = true;
      ctx.encodeResponseMessage(Message{false, "\x0a\x04self"});
      ctx.responseTrailers().set("grpc-status", "0");
      ctx.encodeResponseTrailers();
      return FilterStatus::StopIteration;
    }
    if (fault_ == "answer_without_status") {
      ctx.encodeResponseMessage(Message{false, "\x0a\x04self"});
      ctx.responseTrailers().set("x-answered", "yes");
      ctx.encodeResponseTrailers();
      return FilterStatus::StopIteration;
    }
    if (fault_ == "local_reply_bad_extra" || fault_ == "local_reply_status_extra") {
      HeaderMap extra;
      if (fault_ == "local_reply_bad_extra") extra.add("x-why", "a\r\nb");
      if (fault_ == "local_reply_status_extra") extra.add("grpc-status", "0");
      ctx.sendLocalReply(StatusCode::PermissionDenied, "denied", std::move(extra));
      return FilterStatus::StopIteration;
    }
    if (fault_ == "early_message") ctx.encodeResponseMessage(Message{false, "\x0a\x05" "early"});
    if (fault_ == "bad_request_value") ctx.requestHeaders().set("x-injected", "a\r\nx-evil: 1");
    if (fault_ == "bad_request_name") ctx.requestHeaders().set("Bad Key", "v");
    if (fault_ == "bad_request_te") ctx.requestHeaders().set("te", "gzip");
    if (fault_ == "timer_bad_trailer") {
      timer_ = ctx.timer([&ctx] { ctx.responseTrailers().set("x-from-timer", "a\nb"); });
      timer_->enable(std::chrono::milliseconds(10));
      return FilterStatus::Continue;
    }
    if (fault_ == "posted_throw") {
      ctx.dispatcher().post([] { throw std::runtime_error("test_faults: thrown in posted work"); });
    }
    if (fault_ == "deny_after_hold") {
      // The reply runs every onStreamDone, ours included, which destroys the
      // timer running this lambda; its captures must still be there.
      timer_ = std::make_unique<Timer>(ctx.dispatcher(), [this, &ctx, canary = Canary()] {
        ctx.sendLocalReply(StatusCode::PermissionDenied, "denied after a hold");
        if (canary.word != Canary::kAlive) std::abort();
        ++timer_runs_;
      });
    } else if (fault_ == "double_continue") {
      timer_ = std::make_unique<Timer>(ctx.dispatcher(), [this, &ctx] {
        ctx.continueRequest(*this);
        ctx.continueRequest(*this);  // a second path of the same check also resumes
      });
    } else if (fault_ == "call_timer_throw") {
      timer_ = ctx.timer([] { throw std::runtime_error("test_faults: thrown in a timer of the call"); });
    } else if (fault_ == "call_timer_deny") {
      timer_ = ctx.timer([this, &ctx, canary = Canary()] {
        ctx.sendLocalReply(StatusCode::PermissionDenied, "denied by a timer of the call");
        if (canary.word != Canary::kAlive) std::abort();
        ++timer_runs_;
      });
    } else if (fault_ == "bad_value_while_paused") {
      timer_ = ctx.timer([this, &ctx] {
        ctx.requestHeaders().set("x-injected", std::string("a\0b", 3));
        ctx.continueRequest(*this);
      });
    } else if (fault_ == "timer_throw") {
      timer_ = std::make_unique<Timer>(ctx.dispatcher(), [this, &ctx] {
        ctx.continueRequest(*this);
        throw std::runtime_error("test_faults: thrown in a timer callback");
      });
    } else {
      return FilterStatus::Continue;
    }
    timer_->enable(std::chrono::milliseconds(30));
    return FilterStatus::StopIteration;
  }
  FilterStatus onRequestMessage(StreamContext&, Message& message) override {
    throwIf(fault_ == "request_message", "onRequestMessage");
    if (fault_ == "grow_request") message.payload.append(4096, 'x');
    return FilterStatus::Continue;
  }
  FilterStatus onRequestEnd(StreamContext&) override {
    throwIf(fault_ == "request_end", "onRequestEnd");
    return FilterStatus::Continue;
  }
  FilterStatus onResponseHeaders(StreamContext&) override {
    throwIf(fault_ == "response_headers", "onResponseHeaders");
    return FilterStatus::Continue;
  }
  FilterStatus onResponseMessage(StreamContext& ctx, Message& message) override {
    throwIf(fault_ == "response_message", "onResponseMessage");
    if (fault_ == "grow_response") message.payload.append(4096, 'x');
    // Bounded: a chain that handed the copies back to this hook would
    // otherwise copy for ever.
    if (fault_ == "end_after_first_message" && ++response_messages_seen_ == 1) {
      ctx.responseTrailers().set("grpc-status", "0");
      ctx.encodeResponseTrailers();
    }
    if (fault_ == "inject_copy" && ++response_messages_seen_ <= 100) {
      ctx.encodeResponseMessage(Message{false, "\x0a\x04" "copy"});
    }
    return FilterStatus::Continue;
  }
  FilterStatus onResponseTrailers(StreamContext& ctx) override {
    throwIf(fault_ == "response_trailers", "onResponseTrailers");
    if (fault_ == "bad_trailer_value") ctx.responseTrailers().set("x-count", "12\n");
    if (fault_ == "trailer_status_removed") ctx.responseTrailers().remove("grpc-status");
    if (fault_ == "trailer_status_garbage") ctx.responseTrailers().set("grpc-status", "abc");
    if (fault_ == "trailer_status_twice") ctx.responseTrailers().add("grpc-status", "13");
    if (fault_ == "inject_copy") ctx.responseTrailers().set("x-test-faults-seen", std::to_string(response_messages_seen_));
    if (fault_ == "inject_summary") ctx.encodeResponseMessage(Message{false, "\x0a\x07summary"});
    // Which test_faults entries' trailer hooks a self-made reply passes.
    if (fault_ == "answer_itself") ctx.responseTrailers().add("x-test-faults-hook", answered_ ? "answerer" : "other");
    if (fault_.empty()) {
      ctx.responseTrailers().set("x-test-faults", "seen");
      // What the trailer hooks see as the call's status (core/filter.h).
      ctx.responseTrailers().set("x-test-faults-status",
                                 std::to_string(static_cast<int>(ctx.status())) + ":" + ctx.statusMessage());
    }
    return FilterStatus::Continue;
  }
  void onStreamDone(StreamContext& ctx) override {
    timer_.reset();
    throwIf(fault_ == "stream_done", "onStreamDone");
    if (fault_ == "done_bad_trailer") ctx.responseTrailers().set("x-late", "a\nb");
    if (fault_ == "done_encode_trailers") {
      ctx.responseTrailers().set("grpc-status", "0");
      ctx.encodeResponseTrailers();
    }
  }

 private:
  std::string fault_;
  const void* factory_;  // for a FactoryCheck
  int response_messages_seen_ = 0;
  bool answered_ = false;
  TimerPtr timer_;
  int timer_runs_ = 0;
};

// Holds calls carrying x-test-gate, then refuses them: an async check.
class GateFilter : public Filter {
 public:
  explicit GateFilter(uint64_t hold_ms) : hold_ms_(hold_ms) {}
  FilterStatus onRequestHeaders(StreamContext& ctx) override {
    if (ctx.requestHeaders().get(kGateHeader) == nullptr) return FilterStatus::Continue;
    timer_ = std::make_unique<Timer>(ctx.dispatcher(),
                                     [&ctx] { ctx.sendLocalReply(StatusCode::PermissionDenied, "gate closed"); });
    timer_->enable(std::chrono::milliseconds(hold_ms_));
    return FilterStatus::StopIteration;
  }
  void onStreamDone(StreamContext&) override { timer_.reset(); }

 private:
  uint64_t hold_ms_;
  TimerPtr timer_;
};

class FaultFactory : public FilterFactory {
 public:
  FaultFactory(uint64_t gate_ms, uint64_t worker_timer_ms) : gate_ms_(gate_ms), worker_timer_ms_(worker_timer_ms) {
    LiveFactories::add(this);
  }
  ~FaultFactory() override { LiveFactories::remove(this); }
  FilterPtr createFilter(StreamContext& ctx) const override {
    if (worker_timer_ms_ > 0) startWorkerTimer(ctx.dispatcher());
    if (gate_ms_ > 0) return std::make_unique<GateFilter>(gate_ms_);
    const std::string* fault = ctx.requestHeaders().get(kFaultHeader);
    std::string which = fault != nullptr ? *fault : std::string();
    if (which == "create") throw std::runtime_error("test_faults: thrown in createFilter");
    if (which == "create_non_std") throw 42;
    if (which == "no_filter") return nullptr;
    return std::make_unique<FaultFilter>(std::move(which), this);
  }

 private:
  // A timer of the factory's own on each worker's loop that met a call,
  // re-armed every time it fires (state kept per worker and refreshed, say):
  // the factory owns it, so it lives until the gateway is gone.
  void startWorkerTimer(Dispatcher& dispatcher) const {
    std::lock_guard<std::mutex> lock(worker_timers_mutex_);
    TimerPtr& timer = worker_timers_[&dispatcher];
    if (timer) return;
    timer = std::make_unique<Timer>(dispatcher, [this, &dispatcher] {
      std::lock_guard<std::mutex> lock(worker_timers_mutex_);
      worker_timers_[&dispatcher]->enable(std::chrono::milliseconds(worker_timer_ms_));
    });
    timer->enable(std::chrono::milliseconds(worker_timer_ms_));
  }

  uint64_t gate_ms_;
  uint64_t worker_timer_ms_;
  mutable std::mutex worker_timers_mutex_;
  mutable std::map<Dispatcher*, TimerPtr> worker_timers_;
};

}  // namespace

FilterFactorySharedPtr FaultFilterConfigFactory::create(const nlohmann::json& config, const std::string& path,
                                                        FilterBuildContext& ctx) const {
  uint64_t gate_ms = 0;
  uint64_t worker_timer_ms = 0;
  if (!config.is_null()) {
    JsonObject obj(config, path, ctx.errors);
    gate_ms = obj.unsignedInt("gate_ms", 0, 60'000).value_or(0);
    worker_timer_ms = obj.unsignedInt("worker_timer_ms", 0, 600'000).value_or(0);
    const std::string fault = obj.string("config_fault").value_or("");
    obj.finish();
    if (fault == "throw") throw std::runtime_error("test_faults: thrown reading its config");
    if (fault == "json") (void)config.at("no_such_key").get<int>();
    if (fault == "null") return nullptr;
  }
  return std::make_shared<FaultFactory>(gate_ms, worker_timer_ms);
}

}  // namespace sluice::test
