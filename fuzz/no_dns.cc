// Linked into the fuzzers only: host names in fuzzed configs must not become
// DNS queries (the fuzzers stay on loopback and stay fast). getaddrinfo()
// called from the gateway resolves numeric addresses and "localhost" as
// usual, and fails at once for any other name, as an unknown host would.
#include <dlfcn.h>
#include <netdb.h>

#include <cstring>

extern "C" int getaddrinfo(const char* node, const char* service, const struct addrinfo* hints,
                           struct addrinfo** res) {
  using Fn = int (*)(const char*, const char*, const struct addrinfo*, struct addrinfo**);
  static const auto real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "getaddrinfo"));
  struct addrinfo numeric {};
  if (hints != nullptr) numeric = *hints;
  if (node != nullptr && std::strcmp(node, "localhost") != 0) numeric.ai_flags |= AI_NUMERICHOST;
  return real(node, service, &numeric, res);
}
