#include "filters/access_log/log_sink.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include <spdlog/spdlog.h>

namespace sluice::filters::access_log {
namespace {

// How long the writer waits for a target to take bytes before it looks at
// whether the sink is stopping.
constexpr int kPollStepMs = 100;
// A stopping sink gives up on a target that took nothing for this long.
constexpr auto kStopGrace = std::chrono::seconds(1);

uint64_t countLines(std::string_view text) {
  return static_cast<uint64_t>(std::count(text.begin(), text.end(), '\n'));
}

// Every sink writing to stdout (one per access_log entry: other listeners',
// the old config's during a reload) takes this for a batch, so that a line
// longer than PIPE_BUF, written in pieces, is never mixed with another
// sink's. Only writer threads take it: workers never wait on it.
std::mutex& stdoutWriters() {
  static std::mutex m;
  return m;
}

}  // namespace

LogSink::LogSink(std::string path) : path_(std::move(path)) {
  writer_ = std::thread([this] { run(); });
}

LogSink::~LogSink() {
  {
    // Under the mutex, or the writer could check its wait condition just
    // before this and sleep through the notification.
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  writer_.join();
  closeTarget();
}

void LogSink::write(std::string_view line) {
  {
    std::lock_guard lock(mutex_);
    if (queued_.size() + line.size() > kMaxBufferedBytes) {
      ++dropped_unreported_;
      countDropped(1);
      return;
    }
    queued_.append(line);
  }
  wake_.notify_one();
}

void LogSink::close() {
  std::unique_lock lock(mutex_);
  const uint64_t ticket = ++close_requests_;
  requests_ |= kClose;
  closing_ = true;
  wake_.notify_one();
  closed_.wait_for(lock, kStopGrace + std::chrono::seconds(1), [&] { return closes_done_ >= ticket; });
  closing_ = false;
}

bool LogSink::idle() {
  std::lock_guard lock(mutex_);
  return queued_.empty() && !writing_;
}

void LogSink::reopen() {
  {
    std::lock_guard lock(mutex_);
    requests_ |= kReopen;
  }
  wake_.notify_one();
}

std::string LogSink::target() const { return path_.empty() ? "stdout" : path_; }

void LogSink::countDropped(uint64_t lines) {
  dropped_total_.fetch_add(lines, std::memory_order_relaxed);
  dropped_uncounted_.fetch_add(lines, std::memory_order_relaxed);
}

void LogSink::run() {
  std::string batch;
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !queued_.empty() || requests_ != 0; });
    if (queued_.empty() && requests_ == 0 && stopping_) return;
    const unsigned requests = std::exchange(requests_, 0);
    const uint64_t close_ticket = close_requests_;
    const uint64_t dropped = std::exchange(dropped_unreported_, 0);
    batch.clear();
    batch.swap(queued_);  // the writer keeps the larger buffer for next time
    writing_ = true;
    lock.unlock();

    // A reopen first: lines queued before it go to the file opened
    // afterwards, which is where rotation wants them. A close last: the lines
    // before it are written out first.
    if ((requests & kReopen) && fd_ >= 0 && !path_.empty()) openTarget();
    if (dropped > 0) {
      spdlog::warn("access_log: {} was not taking lines; dropped {} line(s)", target(), dropped);
    }
    if (!batch.empty()) writeOut(batch);
    if (requests & kClose) closeTarget();
    lock.lock();
    writing_ = false;
    if (requests & kClose) {
      closes_done_ = close_ticket;
      closed_.notify_all();
    }
  }
}

bool LogSink::openTarget() {
  closeTarget();
  if (path_.empty()) {
    fd_ = STDOUT_FILENO;
  } else {
    // O_NONBLOCK: opening a FIFO with no reader fails (ENXIO) instead of
    // waiting for one, and writes to a full pipe return EAGAIN.
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
    if (fd_ < 0) {
      if (!error_reported_) spdlog::error("access_log: cannot open {}: {}", path_, std::strerror(errno));
      error_reported_ = true;
      return false;
    }
  }
  struct stat st {};
  fd_is_regular_ = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
  // A path that is stdout under another name ("/dev/stdout", a FIFO stdout
  // is): its writes must take the stdout writers' turn and size too, or they
  // mix with theirs.
  struct stat out {};
  shares_stdout_ = fd_ == STDOUT_FILENO || (::fstat(STDOUT_FILENO, &out) == 0 && out.st_dev == st.st_dev &&
                                            out.st_ino == st.st_ino);
  if (shares_stdout_ && fd_ != STDOUT_FILENO) {
    // And written through stdout itself: a file stdout has open without
    // O_APPEND (`> file`, systemd's StandardOutput=file:) keeps its own
    // offset, and two descriptors would write over each other's lines.
    ::close(fd_);
    fd_ = STDOUT_FILENO;
  }
  if (fd_is_regular_ && st.st_size == 0) at_line_start_ = true;  // a fresh file: nothing torn in it
  return true;
}

void LogSink::closeTarget() {
  if (fd_ >= 0 && fd_ != STDOUT_FILENO) ::close(fd_);
  fd_ = -1;
}

void LogSink::writeOut(std::string_view batch) {
  if (fd_ < 0 && !openTarget()) {
    countDropped(countLines(batch));
    return;
  }
  std::unique_lock<std::mutex> stdout_lock;
  if (shares_stdout_) stdout_lock = std::unique_lock(stdoutWriters());
  std::string after_torn_line;
  const size_t batch_bytes = batch.size();
  if (!at_line_start_) {  // rare: a copy is fine
    after_torn_line = "\n";
    after_torn_line.append(batch);
    batch = after_torn_line;
  }
  // The lines of the batch not written yet: the newline that ends a torn
  // line, while unwritten, is not one of them.
  const auto unwritten_lines = [&] { return countLines(batch) - (batch.size() > batch_bytes ? 1 : 0); };
  auto last_progress = std::chrono::steady_clock::now();
  while (!batch.empty()) {
    // A pipe or FIFO: wait until it takes bytes. stdout is shared with other
    // processes and stays blocking, so it gets at most PIPE_BUF bytes per
    // write, which a pipe reporting POLLOUT takes without blocking.
    size_t chunk = batch.size();
    if (!fd_is_regular_) {
      pollfd p{fd_, POLLOUT, 0};
      int ready = ::poll(&p, 1, kPollStepMs);
      if (ready == 0 || (ready < 0 && errno == EINTR)) {
        if ((stopping_ || closing_) && std::chrono::steady_clock::now() - last_progress > kStopGrace) {
          countDropped(unwritten_lines());
          return;
        }
        continue;
      }
      if (shares_stdout_ && chunk > PIPE_BUF) {
        // Whole lines per write: another sink (another listener's log, the
        // old config's during a reload) writes to the same stdout, and a
        // write of up to PIPE_BUF bytes is never mixed with another's.
        chunk = PIPE_BUF;
        auto line_end = batch.substr(0, chunk).rfind('\n');
        if (line_end != std::string_view::npos) chunk = line_end + 1;
      }
    }
    ssize_t n = ::write(fd_, batch.data(), chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      if (!error_reported_) spdlog::error("access_log: write to {} failed: {}", target(), std::strerror(errno));
      error_reported_ = true;
      countDropped(unwritten_lines());
      return;
    }
    if (error_reported_) {
      spdlog::info("access_log: writing to {} again", target());
      error_reported_ = false;
    }
    at_line_start_ = batch[static_cast<size_t>(n) - 1] == '\n';
    batch.remove_prefix(static_cast<size_t>(n));
    last_progress = std::chrono::steady_clock::now();
  }
}

}  // namespace sluice::filters::access_log
