#include "core/headers.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "core/status.h"

namespace sluice {

const std::string* HeaderMap::get(std::string_view name) const {
  for (const auto& h : headers_) {
    if (h.name == name) return &h.value;
  }
  return nullptr;
}

size_t HeaderMap::count(std::string_view name) const {
  size_t n = 0;
  for (const auto& h : headers_) n += h.name == name ? 1 : 0;
  return n;
}

void HeaderMap::set(std::string_view name, std::string value) {
  ++changes_;
  remove(name);
  headers_.push_back({std::string(name), std::move(value)});
}

size_t HeaderMap::remove(std::string_view name) {
  ++changes_;
  auto before = headers_.size();
  std::erase_if(headers_, [&](const Header& h) { return h.name == name; });
  return before - headers_.size();
}

void HeaderMap::append(HeaderMap&& other) {
  ++changes_;
  ++other.changes_;
  if (headers_.empty()) {
    headers_ = std::move(other.headers_);
  } else {
    for (auto& h : other.headers_) headers_.push_back(std::move(h));
  }
  other.headers_.clear();
}

size_t HeaderMap::byteSize() const {
  size_t total = 0;
  for (const auto& h : headers_) total += h.name.size() + h.value.size() + 32;
  return total;
}

namespace {

// RFC 9110 tchar, lower case only (HTTP/2 field names are lower case).
bool isFieldNameChar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// Enough of a value to recognise it in a log line, printable.
std::string shown(std::string_view text) {
  constexpr size_t kShown = 64;
  return printableText(text.substr(0, kShown)) + (text.size() > kShown ? "..." : "");
}

}  // namespace

std::string invalidHeaderField(const HeaderMap& headers) {
  for (const auto& h : headers) {
    std::string_view name = h.name;
    if (!name.empty() && name[0] == ':') name.remove_prefix(1);
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return isFieldNameChar(c); })) {
      return fmt::format("the header name \"{}\" is not a lower-case HTTP token", shown(h.name));
    }
    // Connection-specific fields, and te other than "trailers" (RFC 9113 8.2.2).
    if (isConnectionSpecificHeader(h.name)) {
      return fmt::format("\"{}\" is a connection-specific header, which HTTP/2 forbids", h.name);
    }
    if (h.name == "te" && h.value != "trailers") {
      return fmt::format("te is \"{}\": HTTP/2 allows only \"trailers\"", shown(h.value));
    }
    const std::string_view value = h.value;
    if (value.find_first_of(std::string_view("\0\r\n", 3)) != std::string_view::npos) {
      return fmt::format("the value of header \"{}\" holds NUL, CR or LF: \"{}\"", h.name, shown(value));
    }
  }
  return {};
}

std::string_view trimBlanks(std::string_view value) {
  const auto blank = [](char c) { return c == ' ' || c == '\t'; };
  while (!value.empty() && blank(value.front())) value.remove_prefix(1);
  while (!value.empty() && blank(value.back())) value.remove_suffix(1);
  return value;
}

bool equalsLowercaseAscii(std::string_view text, std::string_view lower) {
  if (text.size() != lower.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != lower[i]) return false;
  }
  return true;
}

bool isConnectionSpecificHeader(std::string_view name) {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" || name == "transfer-encoding" ||
         name == "upgrade";
}

bool isValidMetadataKey(std::string_view key) {
  return !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
  });
}

bool isReservedMetadataKey(std::string_view key) {
  static constexpr std::string_view kReserved[] = {"content-type", "te", "host", "content-length"};
  return key.starts_with(':') || key.starts_with("grpc-") || isConnectionSpecificHeader(key) ||
         std::find(std::begin(kReserved), std::end(kReserved), key) != std::end(kReserved);
}

std::string_view whyNotACallerKey(std::string_view key) {
  if (key == "x-request-id") return "every call has its own";
  if (isReservedMetadataKey(key)) return "it is reserved by gRPC or HTTP/2";
  return "";
}

std::string headerName(std::string_view configured) {
  std::string name(configured);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return name;
}

}  // namespace sluice
