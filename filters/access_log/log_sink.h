// LogSink: appends whole lines to a file (or stdout), shared by every stream
// and worker of one access_log filter entry; the factory owns it.
//
// Workers never wait for the log's target. write() appends the line to a
// buffer under a mutex and returns; the sink's own writer thread writes the
// buffer out. A target that stops taking lines (stdout piped to a reader that
// is stuck, a FIFO with no reader) would otherwise stop every call of every
// worker. When kMaxBufferedBytes are waiting, further lines are dropped and
// counted, and the writer logs how many once the target takes lines again:
// an access log never slows, stops or fails a call.
//
// Lines go out whole and in order; a line never interleaves with another.
// Log rotation: on SIGUSR1 the gateway calls the factory's reopenLogs(), which
// calls reopen(): a file renamed away by logrotate stops growing and a fresh
// one is created in its place.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace sluice::filters::access_log {

class LogSink {
 public:
  // Lines waiting for the writer, past which new ones are dropped.
  static constexpr size_t kMaxBufferedBytes = 4u << 20;

  // An empty path writes to stdout (never reopened).
  explicit LogSink(std::string path);
  // Stops the writer, after it has written what is buffered (giving up on a
  // target that takes nothing for a second).
  ~LogSink();
  LogSink(const LogSink&) = delete;
  LogSink& operator=(const LogSink&) = delete;

  // `line` must end with '\n'. Never blocks on I/O.
  void write(std::string_view line);
  // Writes out what is buffered and releases the file (a later line opens it
  // again). Waits for the writer, at most about a second more than it takes
  // to give up on a target that takes nothing: for the gateway's stop, so
  // that the last lines are out before the process exits.
  void close();
  // Nothing is buffered or being written: destroying the sink now would not
  // wait on its target.
  bool idle();
  // Closes the file and opens `path` again (a new file if it was renamed);
  // an unopened or closed sink stays as it is.
  void reopen();
  // Lines dropped so far because the target was not taking them.
  uint64_t dropped() const { return dropped_total_.load(std::memory_order_relaxed); }
  // Lines dropped since the last call: what a worker adds to its
  // access_log_dropped counter (drops happen on the writer thread too).
  uint64_t takeDroppedForStats() { return dropped_uncounted_.exchange(0, std::memory_order_relaxed); }

  const std::string& path() const { return path_; }

 private:
  enum Request : unsigned { kClose = 1, kReopen = 2 };
  void run();  // the writer thread
  // Writer thread only: the target's descriptor, and writing to it.
  bool openTarget();
  void closeTarget();
  // Writes `batch` out. On an error, or when stopping and the target took
  // nothing for a second, the rest counts as dropped.
  void writeOut(std::string_view batch);
  std::string target() const;
  void countDropped(uint64_t lines);

  const std::string path_;
  // Shared with workers, under mutex_.
  std::mutex mutex_;
  std::condition_variable wake_;
  std::string queued_;
  unsigned requests_ = 0;
  uint64_t close_requests_ = 0;  // close() calls so far, and how many the writer has done
  uint64_t closes_done_ = 0;
  bool writing_ = false;  // the writer holds a batch
  std::condition_variable closed_;
  uint64_t dropped_unreported_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> closing_{false};  // close() waits: give up on a stuck target after kStopGrace
  std::atomic<uint64_t> dropped_total_{0};
  std::atomic<uint64_t> dropped_uncounted_{0};
  // Writer thread only.
  int fd_ = -1;
  bool fd_is_regular_ = false;
  bool shares_stdout_ = false;  // fd_ is stdout, or the same file opened by another name
  bool error_reported_ = false;
  // The last byte written ended a line. A write that failed part way (a
  // full disk) leaves a torn line: the next write starts with '\n' so that
  // the next line is not glued onto it.
  bool at_line_start_ = true;
  std::thread writer_;
};

}  // namespace sluice::filters::access_log
