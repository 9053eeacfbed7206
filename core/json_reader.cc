#include "core/json_reader.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/status.h"

namespace sluice {

std::string ConfigErrors::format() const {
  std::string out;
  for (const auto& e : errors_) {
    out += fmt::format("config error at {}: {}\n", e.path.empty() ? "/" : printableText(e.path),
                       printableText(e.message));
  }
  return out;
}

std::string jsonPath(std::string_view base, std::string_view key) {
  std::string out(base);
  out += '/';
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

std::string jsonPath(std::string_view base, size_t index) { return fmt::format("{}/{}", base, index); }

const char* jsonTypeName(const nlohmann::json& value) { return value.type_name(); }

namespace {

// Follows the parser through the document (nlohmann's parse callback) so that
// a duplicate key or a too-deep container can be named by its JSON pointer.
class StructureCheck {
 public:
  explicit StructureCheck(ConfigErrors& errors) : errors_(errors) {}

  struct TooDeep {};  // thrown to stop parsing: nothing below it is worth reading

  void onEvent(nlohmann::json::parse_event_t event, const nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    switch (event) {
      case Event::object_start:
      case Event::array_start: {
        std::string path = childPath();
        if (open_.size() >= kMaxJsonDepth) {
          errors_.add(path, fmt::format("nested deeper than {} levels", kMaxJsonDepth));
          throw TooDeep{};
        }
        open_.push_back({event == Event::array_start, std::move(path), 0, {}, {}});
        break;
      }
      case Event::object_end:
      case Event::array_end:
        open_.pop_back();
        valueDone();
        break;
      case Event::key: {
        Container& object = open_.back();
        object.key = parsed.get<std::string>();
        if (std::find(object.keys.begin(), object.keys.end(), object.key) != object.keys.end()) {
          errors_.add(jsonPath(object.path, object.key), "duplicate key (JSON keeps only the last one)");
        } else {
          object.keys.push_back(object.key);
        }
        break;
      }
      case Event::value: valueDone(); break;
    }
  }

 private:
  struct Container {
    bool array;
    std::string path;
    size_t index;                   // arrays: the next element's index
    std::vector<std::string> keys;  // objects: keys seen (configs have few per object)
    std::string key;                // objects: the key whose value is being read
  };

  std::string childPath() const {
    if (open_.empty()) return "";
    const Container& c = open_.back();
    return c.array ? jsonPath(c.path, c.index) : jsonPath(c.path, c.key);
  }
  void valueDone() {
    if (!open_.empty() && open_.back().array) ++open_.back().index;
  }

  ConfigErrors& errors_;
  std::vector<Container> open_;
};

}  // namespace

bool parseConfigJson(const std::string& text, nlohmann::json& out, ConfigErrors& errors) {
  const size_t errors_before = errors.size();
  StructureCheck check(errors);
  try {
    out = nlohmann::json::parse(text, [&check](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
      check.onEvent(event, parsed);
      return true;
    });
  } catch (const StructureCheck::TooDeep&) {
    return false;
  } catch (const nlohmann::json::exception& e) {
    // Not only parse_error: a number too large for a double ("1E999") is an
    // out_of_range thrown by the parser, and must not end the process (a
    // SIGHUP reload of such a file would otherwise kill a serving gateway).
    errors.add("", fmt::format("invalid JSON: {}", e.what()));
    return false;
  }
  return errors.size() == errors_before;
}

JsonObject::JsonObject(const nlohmann::json& value, std::string path, ConfigErrors& errors)
    : object_(value.is_object() ? &value : nullptr), path_(std::move(path)), errors_(errors) {
  if (object_ == nullptr) errors_.add(path_, fmt::format("expected an object, got {}", value.type_name()));
}

const nlohmann::json* JsonObject::value(std::string_view key, bool required) {
  known_.emplace_back(key);
  if (object_ == nullptr) return nullptr;
  auto it = object_->find(key);
  if (it == object_->end()) {
    if (required) errors_.add(pathOf(key), "required key is missing");
    return nullptr;
  }
  return &*it;
}

std::optional<std::string> JsonObject::string(std::string_view key, bool required) {
  const auto* v = value(key, required);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) {
    errors_.add(pathOf(key), fmt::format("expected a string, got {}", v->type_name()));
    return std::nullopt;
  }
  return v->get<std::string>();
}

std::optional<uint64_t> JsonObject::unsignedInt(std::string_view key, uint64_t min, uint64_t max,
                                                bool required) {
  const auto* v = value(key, required);
  if (v == nullptr) return std::nullopt;
  // Parsed text holds 3 as unsigned; JSON built in code (embedders, tests)
  // holds it as signed: both are the count 3.
  const bool non_negative = v->is_number_unsigned() || (v->is_number_integer() && v->get<int64_t>() >= 0);
  if (!non_negative) {
    errors_.add(pathOf(key), fmt::format("expected a non-negative integer, got {}",
                                         v->is_number() ? v->dump() : v->type_name()));
    return std::nullopt;
  }
  auto n = v->get<uint64_t>();
  if (n < min || n > max) {
    errors_.add(pathOf(key), fmt::format("{} is out of range [{}, {}]", n, min, max));
    return std::nullopt;
  }
  return n;
}

std::optional<double> JsonObject::number(std::string_view key, double min, double max, bool required) {
  const auto* v = value(key, required);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) {
    errors_.add(pathOf(key), fmt::format("expected a number, got {}", v->type_name()));
    return std::nullopt;
  }
  auto n = v->get<double>();
  if (!(n >= min && n <= max)) {
    errors_.add(pathOf(key), fmt::format("{} is out of range [{}, {}]", v->dump(), min, max));
    return std::nullopt;
  }
  return n;
}

std::optional<bool> JsonObject::boolean(std::string_view key, bool required) {
  const auto* v = value(key, required);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) {
    errors_.add(pathOf(key), fmt::format("expected true or false, got {}", v->type_name()));
    return std::nullopt;
  }
  return v->get<bool>();
}

std::string JsonObject::name(std::string_view key) {
  auto value = string(key, true);
  if (!value) return "";
  auto allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
  };
  if (value->empty() || value->size() > 128 || !std::all_of(value->begin(), value->end(), allowed)) {
    errors_.add(pathOf(key), fmt::format("{:?} is not a name: use 1 to 128 letters, digits, '_', '.' or '-'", *value));
    return "";
  }
  return *value;
}

const nlohmann::json* JsonObject::array(std::string_view key, bool required) {
  const auto* v = value(key, required);
  if (v != nullptr && !v->is_array()) {
    errors_.add(pathOf(key), fmt::format("expected an array, got {}", v->type_name()));
    return nullptr;
  }
  return v;
}

const nlohmann::json* JsonObject::object(std::string_view key, bool required) {
  const auto* v = value(key, required);
  if (v != nullptr && !v->is_object()) {
    errors_.add(pathOf(key), fmt::format("expected an object, got {}", v->type_name()));
    return nullptr;
  }
  return v;
}

void JsonObject::finish() {
  if (object_ == nullptr) return;
  for (const auto& [key, _] : object_->items()) {
    if (std::find(known_.begin(), known_.end(), key) == known_.end()) {
      errors_.add(pathOf(key), "unknown key");
    }
  }
}

}  // namespace sluice
