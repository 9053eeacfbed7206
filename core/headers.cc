#include "core/headers.h"

#include <algorithm>

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

size_t HeaderMap::byteSize() const {
  size_t total = 0;
  for (const auto& h : headers_) total += h.name.size() + h.value.size() + 32;
  return total;
}

}  // namespace sluice
