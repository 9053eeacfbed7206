// ApiKeyStore: the API keys an auth filter accepts, each with a name (the
// caller's identity, safe to log and to pass to the backend) and its scopes.
//
// Keys are held as SHA-256 digests only: a lookup hashes the presented key,
// so key material is not kept in memory in the clear and no comparison
// leaks how much of a key matched.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/config_errors.h"

namespace sluice::filters::auth {

struct ApiKeyEntry {
  std::string name;
  std::vector<std::string> scopes;
};

class ApiKeyStore {
 public:
  // Reads [{"key": ..., "name": ..., "scopes": [...]}, ...] found at JSON
  // pointer `path`; mistakes (duplicates included) are added to `errors`.
  void addEntries(const nlohmann::json& entries, const std::string& path, ConfigErrors& errors);
  // The keys arrive in `-bin` metadata: compared as the bytes the client
  // sent, any bytes (not only printable ASCII without spaces at its ends).
  // Before addEntries/addFile.
  void setBinary(bool binary) { binary_ = binary; }
  // The same array read from a JSON file; mistakes are reported at `path`
  // (the config's "file" key) naming the file and the place inside it.
  void addFile(const std::string& file, const std::string& path, ConfigErrors& errors);

  size_t size() const { return keys_.size(); }
  const ApiKeyEntry* find(std::string_view key) const;

 private:
  std::unordered_map<std::string, ApiKeyEntry> keys_;  // SHA-256(key) -> entry
  bool binary_ = false;
};

std::string sha256(std::string_view bytes);

}  // namespace sluice::filters::auth
