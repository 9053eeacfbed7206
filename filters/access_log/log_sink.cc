#include "filters/access_log/log_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace sluice::filters::access_log {

LogSink::LogSink(std::string path) : path_(std::move(path)) {}

LogSink::~LogSink() { close(); }

void LogSink::openLocked() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    if (!error_reported_) spdlog::error("access_log: cannot open {}: {}", path_, std::strerror(errno));
    error_reported_ = true;
    return;
  }
  error_reported_ = false;
}

void LogSink::write(std::string_view line) {
  std::lock_guard lock(mutex_);
  int fd = STDOUT_FILENO;
  if (!path_.empty()) {
    if (fd_ < 0) openLocked();
    if (fd_ < 0) return;
    fd = fd_;
  }
  while (!line.empty()) {
    ssize_t n = ::write(fd, line.data(), line.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (!error_reported_) spdlog::error("access_log: write to {} failed: {}", path_.empty() ? "stdout" : path_,
                                          std::strerror(errno));
      error_reported_ = true;
      return;
    }
    line.remove_prefix(static_cast<size_t>(n));
  }
}

void LogSink::close() {
  std::lock_guard lock(mutex_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void LogSink::reopen() {
  std::lock_guard lock(mutex_);
  if (fd_ >= 0) openLocked();  // a closed sink opens on its next write anyway
}

}  // namespace sluice::filters::access_log
