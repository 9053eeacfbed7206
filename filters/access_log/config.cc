#include "filters/access_log/config.h"

#include <algorithm>
#include <filesystem>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/headers.h"
#include "core/off_loop_work.h"
#include "core/reload_shared.h"
#include "core/json_reader.h"
#include "core/stream_context.h"
#include "filters/access_log/filter.h"

namespace sluice::filters::access_log {
namespace {

using json = nlohmann::json;

class AccessLogFilterFactory : public FilterFactory {
 public:
  // One sink per target for every entry and config alive (a reload builds
  // new factories while calls of the old config still log): one writer
  // thread and one descriptor per file, however many configs long streams
  // keep alive, and lines to one file never come from two writers.
  explicit AccessLogFilterFactory(std::shared_ptr<const AccessLogConfig> config)
      : config_(std::move(config)),
        sink_(sharedAcrossReloads<LogSink>(config_->path,
                                           [&] { return std::make_shared<LogSink>(config_->path); })) {}
  FilterPtr createFilter(StreamContext&) const override {
    return std::make_unique<AccessLogFilter>(*config_, *sink_);
  }
  // A factory a reload retired is destroyed on the worker that ran its last
  // call. If it holds the sink's last reference, a sink still writing to a
  // target that takes nothing would hold that worker for up to a second
  // before giving up: it finishes off the loop instead, and the gateway
  // waits for it before exiting. (An idle sink nobody else holds cannot
  // start writing again: dropping it here is quick.)
  ~AccessLogFilterFactory() override {
    if (sink_->idle()) return;
    // Moved all the way in: no reference may stay here, or the last one
    // could be dropped on this thread after all.
    runOffLoop([sink = std::move(sink_)]() mutable { sink.reset(); });
  }
  // Every request gets a line, refused ones included.
  bool observesRefusedCalls() const override { return true; }
  void close() const override { sink_->close(); }
  void reopenLogs() const override { sink_->reopen(); }

 private:
  std::shared_ptr<const AccessLogConfig> config_;
  // The sink is internally synchronised; the factory stays logically const.
  std::shared_ptr<LogSink> sink_;
};

}  // namespace

bool AccessLogConfig::logs(StreamContext& ctx, std::chrono::steady_clock::duration elapsed) const {
  if (sample_percent >= 100) return true;
  if (always_log_failed && ctx.status() != StatusCode::Ok) return true;
  if (always_log_slower_than && elapsed >= *always_log_slower_than) return true;
  if (sample_percent <= 0) return false;
  static thread_local std::minstd_rand rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0, 100)(rng) < sample_percent;
}

FilterFactorySharedPtr AccessLogConfigFactory::create(const json& config, const std::string& path,
                                                      FilterBuildContext& ctx) const {
  auto out = std::make_shared<AccessLogConfig>();
  size_t errors_before = ctx.errors.size();
  if (!config.is_null()) {
    JsonObject obj(config, path, ctx.errors);
    if (auto file = obj.string("path")) {
      // The file itself is created on the first call; a directory that does
      // not exist is a config mistake worth failing start-up for.
      std::filesystem::path p(*file);
      std::error_code ec;
      if (file->empty()) {
        ctx.errors.add(obj.pathOf("path"), "an empty path: omit \"path\" to log to stdout");
      } else if (std::any_of(file->begin(), file->end(), [](char c) { return c >= 0 && c < 0x20; })) {
        // A NUL would cut the path short when the file is opened.
        ctx.errors.add(obj.pathOf("path"), fmt::format("{:?} holds a control character", *file));
      } else if (std::filesystem::is_directory(p, ec)) {
        ctx.errors.add(obj.pathOf("path"), fmt::format("\"{}\" is a directory", *file));
      } else if (auto dir = p.parent_path(); !dir.empty() && !std::filesystem::is_directory(dir, ec)) {
        ctx.errors.add(obj.pathOf("path"), fmt::format("directory \"{}\" does not exist", dir.string()));
      } else {
        out->path = *file;
      }
    }
    if (const json* keys = obj.array("request_metadata")) {
      for (size_t i = 0; i < keys->size(); ++i) {
        const json& k = (*keys)[i];
        // Metadata keys are lower case on the wire (HTTP/2): an upper-case one would never match.
        if (!k.is_string() || !isValidMetadataKey(k.get<std::string>())) {
          ctx.errors.add(jsonPath(obj.pathOf("request_metadata"), i),
                         "expected a metadata key (lower-case letters, digits, '-', '_', '.')");
          continue;
        }
        out->request_metadata.push_back(k.get<std::string>());
      }
    }
    out->sample_percent = obj.number("sample_percent", 0, 100).value_or(100);
    out->always_log_failed = obj.boolean("always_log_failed").value_or(true);
    if (auto ms = obj.unsignedInt("always_log_slower_than_ms", 1, 86'400'000)) {
      out->always_log_slower_than = std::chrono::milliseconds(*ms);
    }
    obj.finish();
  }
  if (ctx.errors.size() != errors_before) return nullptr;
  return std::make_shared<AccessLogFilterFactory>(std::move(out));
}

}  // namespace sluice::filters::access_log
