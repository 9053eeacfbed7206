#include "filters/auth/api_keys.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/json_reader.h"

namespace sluice::filters::auth {

using json = nlohmann::json;

std::string sha256(std::string_view bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), len);
}

void ApiKeyStore::addEntries(const json& entries, const std::string& path, ConfigErrors& errors) {
  if (!entries.is_array()) {
    errors.add(path, fmt::format("expected an array of keys, got {}", entries.type_name()));
    return;
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    JsonObject obj(entries[i], jsonPath(path, i), errors);
    auto key = obj.string("key", true);
    auto name = obj.string("name", true);
    ApiKeyEntry entry;
    if (const json* scopes = obj.array("scopes")) {
      for (size_t j = 0; j < scopes->size(); ++j) {
        const json& s = (*scopes)[j];
        if (!s.is_string() || s.get<std::string>().empty()) {
          errors.add(jsonPath(obj.pathOf("scopes"), j), "expected a scope name (a non-empty string)");
          continue;
        }
        entry.scopes.push_back(s.get<std::string>());
      }
    }
    obj.finish();
    if (!key || !name) continue;
    if (key->empty()) {
      errors.add(obj.pathOf("key"), "an API key cannot be empty");
      continue;
    }
    if (name->empty()) {
      errors.add(obj.pathOf("name"), "a key's name cannot be empty");
      continue;
    }
    // Compared with the metadata value as it arrives, its ends trimmed.
    const bool printable = std::all_of(key->begin(), key->end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
    if (!binary_ && (!printable || key->front() == ' ' || key->back() == ' ')) {
      errors.add(obj.pathOf("key"), fmt::format("the key of \"{}\" could never match: metadata carries printable "
                                                "ASCII, without spaces at its ends",
                                                *name));
      continue;
    }
    entry.name = *name;
    // Never echo the key itself: the message names the entry instead.
    if (!keys_.emplace(sha256(*key), std::move(entry)).second) {
      errors.add(obj.pathOf("key"), fmt::format("the key of \"{}\" is listed twice", *name));
    }
  }
}

void ApiKeyStore::addFile(const std::string& file, const std::string& path, ConfigErrors& errors) {
  json doc;
  if (!loadJsonFile(file, "API key file", path, doc, errors)) return;
  // Mistakes inside the file are reported at the config's "file" key, with
  // the place inside the file in the message.
  ConfigErrors inner;
  addEntries(doc, "", inner);
  for (const auto& e : inner.all()) {
    errors.add(path, fmt::format("in \"{}\" at {}: {}", file, e.path.empty() ? "/" : e.path, e.message));
  }
}

const ApiKeyEntry* ApiKeyStore::find(std::string_view key) const {
  auto it = keys_.find(sha256(key));
  return it == keys_.end() ? nullptr : &it->second;
}

}  // namespace sluice::filters::auth
