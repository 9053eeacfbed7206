#include "core/json_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_set>

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

// Follows the parser through the document (nlohmann's SAX events) so that a
// duplicate key or a too-deep container can be named by its JSON pointer. A
// pass of its own, before the document is built: nlohmann's parse callback,
// which would do it in one, rescans a container after each value it closes,
// so an API key file of 100,000 objects took 2 s (of a worker's loop) to
// read instead of 0.1 s.
class StructureCheck : public nlohmann::json::json_sax_t {
 public:
  explicit StructureCheck(ConfigErrors& errors) : errors_(errors) {}

  bool null() override { return valueDone(); }
  bool boolean(bool) override { return valueDone(); }
  bool number_integer(number_integer_t) override { return valueDone(); }
  bool number_unsigned(number_unsigned_t) override { return valueDone(); }
  bool number_float(number_float_t, const string_t&) override { return valueDone(); }
  bool string(string_t& value) override {
    checkNoNul(value, childPath(), "string");
    return valueDone();
  }
  bool binary(binary_t&) override { return valueDone(); }  // not in JSON text
  bool start_object(std::size_t) override { return open(false); }
  bool start_array(std::size_t) override { return open(true); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& key) override {
    Container& object = open_.back();
    object.key = key;
    if (!object.keys.insert(object.key).second) {
      errors_.add(jsonPath(object.path, object.key), "duplicate key (JSON keeps only the last one)");
    }
    checkNoNul(object.key, jsonPath(object.path, object.key), "key");
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    // A number too large for a double ("1E999") is named by its path (its
    // message has no position); a syntax error by its line and column.
    const bool overflow = dynamic_cast<const nlohmann::json::out_of_range*>(&e) != nullptr;
    errors_.add(overflow ? childPath() : "", fmt::format("invalid JSON: {}", e.what()));
    return false;
  }

 private:
  struct Container {
    bool array;
    std::string path;
    size_t index;                   // arrays: the next element's index
    std::unordered_set<std::string> keys;  // objects: keys seen (a file may have 100,000 in one)
    std::string key;                // objects: the key whose value is being read
  };

  bool open(bool array) {
    std::string path = childPath();
    if (open_.size() >= kMaxJsonDepth) {
      // Nothing below it is worth reading: parsing stops.
      errors_.add(path, fmt::format("nested deeper than {} levels", kMaxJsonDepth));
      return false;
    }
    open_.push_back({array, std::move(path), 0, {}, {}});
    return true;
  }
  bool close() {
    open_.pop_back();
    return valueDone();
  }
  std::string childPath() const {
    if (open_.empty()) return "";
    const Container& c = open_.back();
    return c.array ? jsonPath(c.path, c.index) : jsonPath(c.path, c.key);
  }
  void checkNoNul(const std::string& text, const std::string& path, std::string_view what) {
    if (text.find('\0') == std::string::npos) return;
    errors_.add(path, fmt::format("the {} holds a NUL character (\\u0000), which no address, name, file or "
                                  "header can carry", what));
  }
  bool valueDone() {
    if (!open_.empty() && open_.back().array) ++open_.back().index;
    return true;
  }

  ConfigErrors& errors_;
  std::vector<Container> open_;
};

}  // namespace

bool parseConfigJson(const std::string& text, nlohmann::json& out, ConfigErrors& errors) {
  const size_t errors_before = errors.size();
  if (const size_t nul = text.find('\0'); nul != std::string::npos) {
    errors.add("", fmt::format("invalid JSON: a NUL byte at offset {}", nul));
    return false;
  }
  StructureCheck check(errors);
  if (!nlohmann::json::sax_parse(text, &check) || errors.size() != errors_before) return false;
  // Checked: the document builds without a callback, in linear time.
  out = nlohmann::json::parse(text, nullptr, false);
  if (out.is_discarded()) {  // cannot happen after the check; never a throw on a loop
    errors.add("", "invalid JSON");
    return false;
  }
  return true;
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

std::optional<std::string> readJsonFile(const std::string& file, std::string_view what, const std::string& path,
                                        ConfigErrors& errors) {
  auto fail = [&](std::string_view why) {
    errors.add(path, fmt::format("cannot read {} \"{}\": {}", what, file, why));
    return std::nullopt;
  };
  // What it is before opening it: opening a device can act (a watchdog arms,
  // a tape rewinds), opening a FIFO wakes its writer.
  struct stat named {};
  if (::stat(file.c_str(), &named) != 0) return fail(std::strerror(errno));
  if (S_ISDIR(named.st_mode)) return fail("it is a directory");
  if (!S_ISREG(named.st_mode)) return fail("it is not a regular file (a FIFO, socket or device)");
  // O_NONBLOCK: should the path become a FIFO meanwhile, open must not wait.
  const int fd = ::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return fail(std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(std::strerror(errno));
  if (!S_ISREG(st.st_mode) || st.st_dev != named.st_dev || st.st_ino != named.st_ino) {
    return fail("it changed while being opened");
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxJsonFileBytes) {
    return fail(fmt::format("{} bytes, more than the {} MiB a JSON file may have", st.st_size, kMaxJsonFileBytes >> 20));
  }
  // Read up to one byte past the bound: a file that grew since fstat is caught too.
  std::string text(static_cast<size_t>(st.st_size) + 1, '\0');
  size_t got = 0;
  while (got <= kMaxJsonFileBytes) {
    if (got == text.size()) text.resize(std::min(text.size() * 2, kMaxJsonFileBytes + 1));
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(std::strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > kMaxJsonFileBytes) {
    return fail(fmt::format("more than the {} MiB a JSON file may have", kMaxJsonFileBytes >> 20));
  }
  text.resize(got);
  return text;
}

bool loadJsonFile(const std::string& file, std::string_view what, const std::string& path, nlohmann::json& out,
                  ConfigErrors& errors) {
  auto text = readJsonFile(file, what, path, errors);
  if (!text) return false;
  ConfigErrors inner;
  if (parseConfigJson(*text, out, inner)) return true;
  for (const auto& e : inner.all()) {
    errors.add(path, fmt::format("in {} \"{}\" at {}: {}", what, file, e.path.empty() ? "/" : e.path, e.message));
  }
  return false;
}

}  // namespace sluice
