#include "filters/access_log/reopen_signal.h"

#include <signal.h>

#include <atomic>
#include <mutex>

namespace sluice::filters::access_log {
namespace {

// Lock-free, hence safe to touch from a signal handler. Trivially constructed:
// no static initialisation order to worry about.
std::atomic<uint64_t> g_generation{0};
struct sigaction g_previous {};

void onSigusr1(int signum, siginfo_t* info, void* context) {
  g_generation.fetch_add(1, std::memory_order_relaxed);
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) g_previous.sa_sigaction(signum, info, context);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN &&
             g_previous.sa_handler != nullptr) {
    g_previous.sa_handler(signum);
  }
}

}  // namespace

static_assert(std::atomic<uint64_t>::is_always_lock_free, "the SIGUSR1 handler needs a lock-free counter");

void installReopenSignalHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_sigaction = onSigusr1;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(SIGUSR1, &action, &g_previous);
  });
}

uint64_t reopenGeneration() { return g_generation.load(std::memory_order_relaxed); }

void requestReopen() { g_generation.fetch_add(1, std::memory_order_relaxed); }

}  // namespace sluice::filters::access_log
