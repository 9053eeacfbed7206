// A getaddrinfo() the e2e tests script, preloaded (LD_PRELOAD) into the
// gateway they start: the one way to give a real gateway process a name that
// changes address, or a resolver that hangs, on a machine whose DNS the tests
// must not touch.
//
// Names ending in ".sluice-test" are answered from the file named by
// SLUICE_TEST_RESOLVER_FILE, read on every lookup, one line per name:
//   NAME IPV4[,IPV4...] DELAY_MS
// The answer (those IPv4 addresses, in that order) comes after sleeping
// DELAY_MS; a name missing from the file does not resolve. Every other name
// goes to the real resolver.
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>

namespace {

constexpr std::string_view kSuffix = ".sluice-test";

bool scripted(const char* node) {
  if (node == nullptr) return false;
  std::string_view name(node);
  return name.size() > kSuffix.size() && name.substr(name.size() - kSuffix.size()) == kSuffix;
}

// One allocation holding the addrinfo and its sockaddr, as glibc's own
// answers are laid out, so glibc's freeaddrinfo() frees it.
addrinfo* answer(const in_addr& ip) {
  auto* block = static_cast<char*>(std::calloc(1, sizeof(addrinfo) + sizeof(sockaddr_in)));
  if (block == nullptr) return nullptr;
  auto* ai = reinterpret_cast<addrinfo*>(block);
  auto* sa = reinterpret_cast<sockaddr_in*>(block + sizeof(addrinfo));
  sa->sin_family = AF_INET;
  sa->sin_addr = ip;
  ai->ai_family = AF_INET;
  ai->ai_socktype = SOCK_STREAM;
  ai->ai_protocol = IPPROTO_TCP;
  ai->ai_addrlen = sizeof(sockaddr_in);
  ai->ai_addr = reinterpret_cast<sockaddr*>(sa);
  return ai;
}

int scriptedLookup(const char* node, addrinfo** res) {
  const char* file = std::getenv("SLUICE_TEST_RESOLVER_FILE");
  if (file == nullptr) return EAI_NONAME;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string name, ip;
    long delay_ms = 0;
    if (!(fields >> name >> ip >> delay_ms) || name != node) continue;
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    // Each node is its own allocation, as glibc's freeaddrinfo() expects.
    addrinfo* head = nullptr;
    addrinfo** tail = &head;
    std::istringstream ips(ip);
    for (std::string one; std::getline(ips, one, ',');) {
      in_addr addr{};
      if (inet_pton(AF_INET, one.c_str(), &addr) != 1) {
        if (head != nullptr) freeaddrinfo(head);
        return EAI_NONAME;
      }
      *tail = answer(addr);
      if (*tail == nullptr) {
        if (head != nullptr) freeaddrinfo(head);
        return EAI_MEMORY;
      }
      tail = &(*tail)->ai_next;
    }
    if (head == nullptr) return EAI_NONAME;
    *res = head;
    return 0;
  }
  return EAI_NONAME;
}

}  // namespace

extern "C" int getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** res) {
  if (scripted(node)) return scriptedLookup(node, res);
  using Real = int (*)(const char*, const char*, const addrinfo*, addrinfo**);
  static const auto real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "getaddrinfo"));
  return real(node, service, hints, res);
}
