// JsonObject: reads one JSON object of a config with type checks, tracking the
// JSON pointer of every value so that errors name the place. Keys never read
// are reported as unknown by finish(). nlohmann_json stays behind this class:
// no exception escapes it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/config_errors.h"

namespace sluice {

// "/a/b" + "c" -> "/a/b/c" (escaping '~' and '/' as JSON pointer requires).
std::string jsonPath(std::string_view base, std::string_view key);
std::string jsonPath(std::string_view base, size_t index);
// "object", "array", "string", ... for messages.
const char* jsonTypeName(const nlohmann::json& value);

// How deep a config may nest objects and arrays. Real configs stay under 15;
// the limit keeps every recursive walk of a loaded config (the admin's
// /config_dump, redaction) far from the end of a thread's stack.
constexpr size_t kMaxJsonDepth = 64;

// Parses config text into `out`. Beyond what JSON itself requires, it refuses
// an object with the same key twice (JSON keeps only the last, so a second
// "filters" would silently replace the first), nesting past kMaxJsonDepth, a
// NUL byte in the text (the parser stops there, ignoring what follows) and a
// string or key holding U+0000 (C calls taking an address or a file name
// would cut it short). Every such mistake is added to `errors` with its JSON
// pointer; false then.
bool parseConfigJson(const std::string& text, nlohmann::json& out, ConfigErrors& errors);

// The largest JSON file read (the config, a JWKS or API key file): configs
// with thousands of endpoints stay under a megabyte, and one reload must not
// read gigabytes on a worker's loop or run the process out of memory.
constexpr size_t kMaxJsonFileBytes = 16 << 20;

// The text of `file`, `what` naming it in errors ("config file"), which go at
// `path`. Only a regular file of at most kMaxJsonFileBytes is read: a FIFO
// would block the loop until some writer came, a device might never end.
std::optional<std::string> readJsonFile(const std::string& file, std::string_view what, const std::string& path,
                                        ConfigErrors& errors);
// readJsonFile, then parseConfigJson into `out`: a mistake inside the file
// goes at `path` too, its place in the file in the message. False on any.
bool loadJsonFile(const std::string& file, std::string_view what, const std::string& path, nlohmann::json& out,
                  ConfigErrors& errors);

class JsonObject {
 public:
  // Reports an error (and reads as empty) when `value` is not an object.
  JsonObject(const nlohmann::json& value, std::string path, ConfigErrors& errors);

  bool isObject() const { return object_ != nullptr; }
  const std::string& path() const { return path_; }
  std::string pathOf(std::string_view key) const { return jsonPath(path_, key); }
  ConfigErrors& errors() { return errors_; }

  // Each getter marks the key as known; a missing required key or a value of
  // the wrong type is reported and reads as nullopt / nullptr.
  const nlohmann::json* value(std::string_view key, bool required = false);
  std::optional<std::string> string(std::string_view key, bool required = false);
  std::optional<uint64_t> unsignedInt(std::string_view key, uint64_t min, uint64_t max,
                                      bool required = false);
  // Any JSON number, integer or not.
  std::optional<double> number(std::string_view key, double min, double max, bool required = false);
  std::optional<bool> boolean(std::string_view key, bool required = false);
  // A required name of something the config defines (a listener, a
  // cluster): letters, digits, '_', '.' and '-', 1 to 128 of them. Names go
  // into stats lines, metric labels and log lines unquoted, where a space,
  // a newline or ": " would break them. Reads as "" after an error.
  std::string name(std::string_view key);
  const nlohmann::json* array(std::string_view key, bool required = false);
  const nlohmann::json* object(std::string_view key, bool required = false);

  // Reports every key that no getter asked for.
  void finish();

 private:
  const nlohmann::json* object_;
  std::string path_;
  ConfigErrors& errors_;
  std::vector<std::string> known_;
};

}  // namespace sluice
