// ConfigErrors: every mistake found in a config, each with the JSON pointer of
// the value at fault, so `sluice --validate` can report them all at once.
#pragma once

#include <string>
#include <vector>

namespace sluice {

struct ConfigError {
  std::string path;  // JSON pointer, e.g. "/listeners/0/filters/1/name"
  std::string message;
};

class ConfigErrors {
 public:
  void add(std::string path, std::string message) { errors_.push_back({std::move(path), std::move(message)}); }
  bool empty() const { return errors_.empty(); }
  size_t size() const { return errors_.size(); }
  const std::vector<ConfigError>& all() const { return errors_; }
  // One "config error at PATH: MESSAGE" line per error.
  std::string format() const;

 private:
  std::vector<ConfigError> errors_;
};

}  // namespace sluice
