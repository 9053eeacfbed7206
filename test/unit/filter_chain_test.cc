// FilterChain: ordering, StopIteration / continue, local replies from any hook.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/filter_chain.h"
#include "test/unit/fake_context.h"

namespace sluice {
namespace {

using test::FakeContext;

struct RecordingSink : ResponseSink {
  void sendHeaders() override { events.push_back("sink:headers"); }
  void sendMessage(Message&& m) override { events.push_back("sink:msg:" + m.payload); }
  void sendTrailers() override { events.push_back("sink:trailers"); }
  std::vector<std::string>& events;
  explicit RecordingSink(std::vector<std::string>& e) : events(e) {}
};

// Records every hook; can be told to stop or reply at a given hook.
class Recorder : public Filter {
 public:
  Recorder(std::string name, std::vector<std::string>& log) : name_(std::move(name)), log_(log) {}
  std::string stop_at;   // hook name at which to return StopIteration (once)
  std::string reply_at;  // hook name at which to sendLocalReply
  std::string drop_at;   // hook name at which to return DropMessage (every time)
  bool done = false;

  FilterStatus onRequestHeaders(StreamContext& c) override { return hit(c, "req_headers"); }
  FilterStatus onRequestMessage(StreamContext& c, Message& m) override { return hit(c, "req_msg:" + m.payload); }
  FilterStatus onRequestEnd(StreamContext& c) override { return hit(c, "req_end"); }
  FilterStatus onResponseHeaders(StreamContext& c) override { return hit(c, "resp_headers"); }
  FilterStatus onResponseMessage(StreamContext& c, Message& m) override { return hit(c, "resp_msg:" + m.payload); }
  FilterStatus onResponseTrailers(StreamContext& c) override { return hit(c, "resp_trailers"); }
  void onStreamDone(StreamContext&) override {
    REQUIRE_FALSE(done);
    done = true;
    log_.push_back(name_ + ":done");
  }

 private:
  FilterStatus hit(StreamContext& c, const std::string& hook) {
    log_.push_back(name_ + ":" + hook);
    if (hook == reply_at || hook.rfind(reply_at + ":", 0) == 0) {
      if (!reply_at.empty()) {
        c.sendLocalReply(StatusCode::PermissionDenied, "no");
        return FilterStatus::StopIteration;
      }
    }
    if (!drop_at.empty() && hook == drop_at) return FilterStatus::DropMessage;
    if (!stop_at.empty() && hook == stop_at) {
      stop_at.clear();
      return FilterStatus::StopIteration;
    }
    return FilterStatus::Continue;
  }
  std::string name_;
  std::vector<std::string>& log_;
};

Message msg(std::string p) {
  Message m;
  m.payload = std::move(p);
  return m;
}

struct Fixture {
  std::vector<std::string> log;
  FakeContext ctx;
  RecordingSink sink{log};
  FilterChain chain{ctx, sink};
  Recorder* a;
  Recorder* b;
  Fixture() {
    ctx.chain = &chain;
    auto fa = std::make_unique<Recorder>("a", log);
    auto fb = std::make_unique<Recorder>("b", log);
    a = fa.get();
    b = fb.get();
    chain.addFilter(std::move(fa));
    chain.addFilter(std::move(fb));
  }
};

}  // namespace

TEST_CASE("request hooks run in order, response hooks in reverse", "[filter_chain]") {
  Fixture f;
  f.chain.requestHeaders();
  f.chain.requestMessage(msg("x"));
  f.chain.requestEnd();
  f.chain.responseHeaders();
  f.chain.responseMessage(msg("y"));
  f.chain.responseTrailers();
  CHECK(f.log == std::vector<std::string>{
                     "a:req_headers", "b:req_headers", "a:req_msg:x", "b:req_msg:x", "a:req_end", "b:req_end",
                     "b:resp_headers", "a:resp_headers", "sink:headers", "b:resp_msg:y", "a:resp_msg:y",
                     "sink:msg:y", "b:resp_trailers", "a:resp_trailers", "sink:trailers"});
}

TEST_CASE("DropMessage: the message goes no further, the next event follows", "[filter_chain]") {
  Fixture f;
  f.a->drop_at = "req_msg:drop";
  f.b->drop_at = "resp_msg:drop";
  f.chain.requestHeaders();
  f.chain.requestMessage(msg("drop"));
  f.chain.requestMessage(msg("x"));
  f.chain.requestEnd();
  f.chain.responseHeaders();
  f.chain.responseMessage(msg("drop"));
  f.chain.responseMessage(msg("y"));
  f.chain.responseTrailers();
  CHECK(f.log == std::vector<std::string>{
                     "a:req_headers", "b:req_headers", "a:req_msg:drop", "a:req_msg:x", "b:req_msg:x", "a:req_end",
                     "b:req_end", "b:resp_headers", "a:resp_headers", "sink:headers", "b:resp_msg:drop",
                     "b:resp_msg:y", "a:resp_msg:y", "sink:msg:y", "b:resp_trailers", "a:resp_trailers",
                     "sink:trailers"});
  CHECK(f.chain.queuedRequestBytes() == 0);
  CHECK(f.chain.queuedResponseBytes() == 0);
  CHECK_FALSE(f.ctx.ended());
}

TEST_CASE("DropMessage from a hook that is not about a message ends the call with INTERNAL", "[filter_chain]") {
  Fixture f;
  f.b->drop_at = "req_headers";
  f.chain.requestHeaders();
  f.chain.requestMessage(msg("x"));
  CHECK(f.ctx.ended());
  CHECK(f.ctx.status() == StatusCode::Internal);
  CHECK(f.ctx.local_reply_reason == LocalReplyReason::FilterError);
  CHECK(f.log == std::vector<std::string>{"a:req_headers", "b:req_headers"});
}

TEST_CASE("StopIteration holds later events until continueRequest", "[filter_chain]") {
  Fixture f;
  f.a->stop_at = "req_headers";
  f.chain.requestHeaders();
  f.chain.requestMessage(msg("1"));
  f.chain.requestMessage(msg("22"));
  f.chain.requestEnd();
  CHECK(f.log == std::vector<std::string>{"a:req_headers"});
  CHECK(f.chain.queuedRequestBytes() == 5 + 1 + 5 + 2 + 2 * FilterChain::queuedMessageOverhead());
  f.ctx.continueRequest();
  CHECK(f.log == std::vector<std::string>{"a:req_headers", "b:req_headers", "a:req_msg:1", "b:req_msg:1",
                                          "a:req_msg:22", "b:req_msg:22", "a:req_end", "b:req_end"});
  CHECK(f.chain.queuedRequestBytes() == 0);
}

TEST_CASE("a resume that comes after the call ended runs no more hooks", "[filter_chain]") {
  Fixture f;
  f.a->stop_at = "req_headers";
  f.chain.requestHeaders();
  f.chain.requestMessage(msg("1"));
  // The call ends (a deadline, say) while filter a is paused; a's timer then
  // fires anyway and resumes.
  f.ctx.sendLocalReply(StatusCode::DeadlineExceeded, "late");
  f.chain.streamDone();
  f.ctx.continueRequest();
  CHECK(f.log == std::vector<std::string>{"a:req_headers", "a:done", "b:done"});
}

TEST_CASE("response messages held behind a paused filter are counted until they pass", "[filter_chain]") {
  Fixture f;
  f.a->stop_at = "resp_headers";
  f.chain.responseHeaders();
  f.chain.responseMessage(msg("1"));
  f.chain.responseMessage(msg("22"));
  CHECK(f.chain.queuedResponseBytes() == 5 + 1 + 5 + 2 + 2 * FilterChain::queuedMessageOverhead());
  f.ctx.continueResponse();
  CHECK(f.chain.queuedResponseBytes() == 0);
  CHECK(f.log.back() == "sink:msg:22");
}

TEST_CASE("a paused message resumes at the next filter", "[filter_chain]") {
  Fixture f;
  f.b->stop_at = "req_msg:1";
  f.chain.requestHeaders();
  f.chain.requestMessage(msg("1"));
  f.chain.requestMessage(msg("2"));
  CHECK(f.log.back() == "b:req_msg:1");
  f.ctx.continueRequest();
  CHECK(f.log == std::vector<std::string>{"a:req_headers", "b:req_headers", "a:req_msg:1", "b:req_msg:1",
                                          "a:req_msg:2", "b:req_msg:2"});
}

TEST_CASE("response StopIteration holds the sink until continueResponse", "[filter_chain]") {
  Fixture f;
  f.b->stop_at = "resp_headers";
  f.chain.responseHeaders();
  f.chain.responseMessage(msg("m"));
  CHECK(f.log == std::vector<std::string>{"b:resp_headers"});
  f.ctx.continueResponse();
  CHECK(f.log == std::vector<std::string>{"b:resp_headers", "a:resp_headers", "sink:headers", "b:resp_msg:m",
                                          "a:resp_msg:m", "sink:msg:m"});
}

TEST_CASE("sendLocalReply from any hook stops the chain", "[filter_chain]") {
  for (std::string hook : {"req_headers", "req_msg", "req_end", "resp_headers", "resp_msg", "resp_trailers"}) {
    DYNAMIC_SECTION("from " << hook) {
      Fixture f;
      bool response_hook = hook.rfind("resp", 0) == 0;
      // Replying from the filter that sees the event first.
      (response_hook ? f.b : f.a)->reply_at = hook;
      f.chain.requestHeaders();
      f.chain.requestMessage(msg("q"));
      f.chain.requestEnd();
      f.chain.responseHeaders();
      f.chain.responseMessage(msg("r"));
      f.chain.responseTrailers();
      CHECK(f.ctx.ended());
      CHECK(f.ctx.status() == StatusCode::PermissionDenied);
      // The second filter of the direction never saw the event that was answered.
      std::string other = response_hook ? "a:" + hook : "b:" + hook;
      for (const auto& e : f.log) CHECK(e.rfind(other, 0) != 0);
      f.chain.streamDone();
      f.chain.streamDone();
      CHECK(f.a->done);
      CHECK(f.b->done);
    }
  }
}

TEST_CASE("continueRequest called inside the pausing hook is not lost", "[filter_chain]") {
  std::vector<std::string> log;
  FakeContext ctx;
  RecordingSink sink{log};
  FilterChain chain{ctx, sink};
  ctx.chain = &chain;
  struct Sync : Filter {
    FilterStatus onRequestHeaders(StreamContext& c) override {
      c.continueRequest();  // e.g. an async check that completed synchronously
      return FilterStatus::StopIteration;
    }
  };
  chain.addFilter(std::make_unique<Sync>());
  chain.addFilter(std::make_unique<Recorder>("b", log));
  chain.requestHeaders();
  CHECK(log == std::vector<std::string>{"b:req_headers"});
}

}  // namespace sluice
