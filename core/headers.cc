#include "core/headers.h"

#include <algorithm>
#include <cctype>

namespace sluice {

const std::string* HeaderMap::get(std::string_view name) const {
  for (const auto& h : headers_) {
    if (h.name == name) return &h.value;
  }
  return nullptr;
}

void HeaderMap::set(std::string_view name, std::string value) {
  remove(name);
  headers_.push_back({std::string(name), std::move(value)});
}

size_t HeaderMap::remove(std::string_view name) {
  auto before = headers_.size();
  std::erase_if(headers_, [&](const Header& h) { return h.name == name; });
  return before - headers_.size();
}

void HeaderMap::append(HeaderMap&& other) {
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

bool isValidMetadataKey(std::string_view key) {
  return !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
  });
}

bool isReservedMetadataKey(std::string_view key) {
  static constexpr std::string_view kReserved[] = {"content-type",     "te",      "host",
                                                   "connection",       "keep-alive", "proxy-connection",
                                                   "upgrade",          "transfer-encoding", "content-length"};
  return key.starts_with(':') || key.starts_with("grpc-") ||
         std::find(std::begin(kReserved), std::end(kReserved), key) != std::end(kReserved);
}

std::string headerName(std::string_view configured) {
  std::string name(configured);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return name;
}

}  // namespace sluice
