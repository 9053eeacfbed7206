#include "filters/fault/filter.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/stats.h"
#include "core/stream_context.h"
#include "core/worker_context.h"

namespace sluice::filters::fault {
namespace {

// True for `percent` of the calls.
bool draw(double percent) {
  if (percent >= 100) return true;
  if (percent <= 0) return false;
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0, 100)(rng) < percent;
}

// The one value of `name`, removed from the request either way so the backend
// never sees it; nullopt when absent. More than one value is an error.
struct HeaderValue {
  std::optional<std::string> value;
  bool repeated = false;
};
HeaderValue takeHeader(HeaderMap& headers, std::string_view name) {
  HeaderValue out;
  if (const std::string* v = headers.get(name)) out.value = *v;
  out.repeated = headers.remove(name) > 1;
  return out;
}

// Decimal digits only (no sign, no spaces); more than 64 bits of them read
// as the largest number, which every use caps or refuses.
std::optional<uint64_t> parseNumber(const std::string& text) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || end != text.data() + text.size()) return std::nullopt;
  if (ec == std::errc::result_out_of_range) return UINT64_MAX;
  if (ec != std::errc()) return std::nullopt;
  return n;
}

// "UNAVAILABLE" or its number, 1 to 16.
std::optional<StatusCode> parseCode(const std::string& text) {
  if (auto named = statusCodeFromName(text)) return *named == StatusCode::Ok ? std::nullopt : named;
  auto n = parseNumber(text);
  if (!n || *n < 1 || *n > 16) return std::nullopt;
  return static_cast<StatusCode>(*n);
}

// A caller's malformed request for a fault is refused, not ignored: the test
// it belongs to should fail loudly, not pass without its fault.
FilterStatus refuse(StreamContext& ctx, std::string_view name, std::string_view why) {
  ctx.sendLocalReply(StatusCode::InvalidArgument, fmt::format("fault filter: {} {}", name, why));
  return FilterStatus::StopIteration;
}

}  // namespace

FaultFilter::~FaultFilter() { releaseDelay(); }

FilterStatus FaultFilter::onRequestHeaders(StreamContext& ctx) {
  const FaultRule* rule = config_.ruleFor(ctx.path(), ctx.service(), ctx.requestHeaders());
  if (rule == nullptr) return FilterStatus::Continue;
  // A rule that takes faults from metadata consumes both headers: neither
  // reaches the backend, whichever kinds the rule reads.
  HeaderValue abort_header;
  HeaderValue delay_header;
  if ((rule->abort && rule->abort->from_header) || (rule->delay && rule->delay->from_header)) {
    abort_header = takeHeader(ctx.requestHeaders(), kAbortHeader);
    delay_header = takeHeader(ctx.requestHeaders(), kDelayHeader);
  }

  if (rule->abort) {
    abort_code_ = rule->abort->code;
    bool wanted = true;
    if (rule->abort->from_header) {
      if (abort_header.repeated) return refuse(ctx, kAbortHeader, "sent more than once");
      wanted = abort_header.value.has_value();
      if (wanted) {
        auto code = parseCode(*abort_header.value);
        if (!code) {
          return refuse(ctx, kAbortHeader,
                        fmt::format("\"{}\" is not a gRPC status other than OK (a name such as UNAVAILABLE, or 1 to 16)",
                                    *abort_header.value));
        }
        abort_code_ = *code;
      }
    }
    if (wanted && draw(rule->abort->percent)) abort_ = &*rule->abort;
  }

  std::chrono::milliseconds delay{0};
  if (rule->delay) {
    delay = rule->delay->fixed;
    if (rule->delay->from_header) {
      if (delay_header.repeated) return refuse(ctx, kDelayHeader, "sent more than once");
      delay = std::chrono::milliseconds(0);
      if (delay_header.value) {
        auto ms = parseNumber(*delay_header.value);
        if (!ms) {
          return refuse(ctx, kDelayHeader,
                        fmt::format("\"{}\" is not a number of milliseconds", *delay_header.value));
        }
        // Capped: a caller cannot hold a call (and its place) longer than the rule allows.
        delay = std::chrono::milliseconds(std::min<uint64_t>(*ms, static_cast<uint64_t>(rule->delay->max.count())));
      }
    }
    if (delay.count() > 0 && !draw(rule->delay->percent)) delay = std::chrono::milliseconds(0);
  }

  if (delay.count() > 0 && admitDelay(ctx)) {
    ctx.worker().stats().filterCounter("fault_delays_injected").inc();
    delay_timer_ = ctx.timer([this, &ctx] { onDelayDone(ctx); });
    delay_timer_->enable(delay);
    return FilterStatus::StopIteration;
  }
  if (abort_ != nullptr) {
    abort(ctx);
    return FilterStatus::StopIteration;
  }
  return FilterStatus::Continue;
}

void FaultFilter::onDelayDone(StreamContext& ctx) {
  releaseDelay();
  if (abort_ != nullptr) {
    abort(ctx);
  } else {
    ctx.continueRequest(*this);
  }
}

void FaultFilter::abort(StreamContext& ctx) {
  ctx.worker().stats().filterCounter("fault_aborts_injected").inc();
  spdlog::debug("[C{}][S{}] fault filter: aborting with {}", ctx.connectionId(), ctx.streamId(),
                statusCodeName(abort_code_));
  ctx.sendLocalReply(LocalReplyReason::Fault, abort_code_, abort_->message);
}

bool FaultFilter::admitDelay(StreamContext& ctx) {
  const uint64_t limit = config_.max_active_faults;
  uint64_t now = active_.delays.load(std::memory_order_relaxed);
  do {
    if (limit != 0 && now >= limit) {
      ctx.worker().stats().filterCounter("fault_overflow").inc();
      return false;
    }
  } while (!active_.delays.compare_exchange_weak(now, now + 1, std::memory_order_relaxed));
  holds_delay_ = true;
  return true;
}

void FaultFilter::releaseDelay() {
  if (!holds_delay_) return;
  holds_delay_ = false;
  active_.delays.fetch_sub(1, std::memory_order_relaxed);
}

void FaultFilter::onStreamDone(StreamContext&) {
  // A call ended during its delay (its deadline, the client cancelling) gives
  // its place back at once. (Destroying the timer from its own callback, as
  // here after an abort, is safe: core/timer.h.)
  releaseDelay();
  delay_timer_.reset();
}

}  // namespace sluice::filters::fault
