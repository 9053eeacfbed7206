#include "filters/rate_limit/filter.h"

#include <openssl/evp.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "codecs/grpc/grpc_headers.h"
#include "core/headers.h"
#include "core/stream_context.h"

namespace sluice::filters::rate_limit {
namespace {

// Longer metadata values are keyed by their digest, so what one table entry
// costs is bounded whatever clients send.
constexpr size_t kMaxKeyValueBytes = 64;

std::string boundedKey(std::string value) {
  if (value.size() <= kMaxKeyValueBytes) return value;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(value.data(), value.size(), digest, &len, EVP_sha256(), nullptr);
  return fmt::format("sha256:{:02x}", fmt::join(digest, digest + len, ""));
}

}  // namespace

FilterStatus RateLimitFilter::onRequestHeaders(StreamContext& ctx) {
  rule_ = config_.ruleFor(ctx.path(), ctx.service(), ctx.requestHeaders());
  if (rule_ == nullptr) return FilterStatus::Continue;
  rule_index_ = static_cast<size_t>(rule_ - config_.rules.data());
  if (!rule_->key.empty()) {
    // Callers without the key share one bucket (the rule's shared one).
    const std::string* value = ctx.requestHeaders().get(rule_->key);
    if (value != nullptr && !trimBlanks(*value).empty()) {
      table_key_ = boundedKey(grpc_headers::callerKeyValue(rule_->key, *value));
    }
  }
  if (rule_->calls && !take(ctx, *rule_->calls, BucketKind::Calls)) return FilterStatus::StopIteration;
  return FilterStatus::Continue;
}

FilterStatus RateLimitFilter::onRequestMessage(StreamContext& ctx, Message&) {
  if (rule_ != nullptr && rule_->messages && !take(ctx, *rule_->messages, BucketKind::Messages)) {
    return FilterStatus::StopIteration;
  }
  return FilterStatus::Continue;
}

bool RateLimitFilter::take(StreamContext& ctx, const Limit& limit, BucketKind kind) {
  const auto now = BucketTable::Clock::now();
  BucketTable::Result result;
  if (table_key_.empty()) {
    // A rule without a key, or a caller without the key's metadata: the
    // rule's shared bucket of this kind.
    result = table_.takeShared(rule_index_ * 2 + static_cast<size_t>(kind), limit.bucket, now);
  } else {
    // One partition per rule, one entry per caller for both kinds; no
    // allocation per message.
    result = table_.take(rule_index_, table_key_, kind, limit.bucket, now);
  }
  if (result.allowed) return true;
  spdlog::debug("[C{}][S{}] rate limited: {}", ctx.connectionId(), ctx.streamId(), limit.description);
  HeaderMap trailers;
  trailers.add(std::string(grpc_headers::kRetryPushbackHeader), std::to_string(result.retry_after.count()));
  ctx.sendLocalReply(StatusCode::ResourceExhausted,
                     fmt::format("rate limit exceeded ({}); retry in {} ms", limit.description,
                                 result.retry_after.count()),
                     std::move(trailers));
  return false;
}

}  // namespace sluice::filters::rate_limit
