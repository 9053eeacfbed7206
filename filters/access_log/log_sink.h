// LogSink: appends whole lines to a file (or stdout), shared by every stream
// and worker of one access_log filter entry; the factory owns it.
//
// Each line goes out in one write(2) under a mutex, so lines from different
// workers never interleave, and `tail -f` sees a call as soon as it ended.
// Log rotation: on SIGUSR1 the gateway calls the factory's reopenLogs(), which
// calls reopen(): a file renamed away by logrotate stops growing and a fresh
// one is created in its place.
#pragma once

#include <mutex>
#include <string>
#include <string_view>

namespace sluice::filters::access_log {

class LogSink {
 public:
  // An empty path writes to stdout (never reopened).
  explicit LogSink(std::string path);
  ~LogSink();
  LogSink(const LogSink&) = delete;
  LogSink& operator=(const LogSink&) = delete;

  // `line` must end with '\n'. Failures are logged once per open attempt, and
  // the line is dropped: an access log never fails a call.
  void write(std::string_view line);
  // Releases the file; a later write opens it again.
  void close();
  // Closes the file and opens `path` again (a new file if it was renamed);
  // an unopened or closed sink stays as it is.
  void reopen();

  const std::string& path() const { return path_; }

 private:
  void openLocked();

  const std::string path_;
  std::mutex mutex_;
  int fd_ = -1;
  bool error_reported_ = false;
};

}  // namespace sluice::filters::access_log
