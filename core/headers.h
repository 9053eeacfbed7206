// HeaderMap: an ordered list of HTTP/2 header fields (pseudo-headers and gRPC
// metadata). Order and duplicates are preserved so that a proxied call carries
// exactly what the peer sent; names are lower case as HTTP/2 requires.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice {

struct Header {
  std::string name;
  std::string value;
};

class HeaderMap {
 public:
  using const_iterator = std::vector<Header>::const_iterator;

  // First value for `name`, or nullptr.
  const std::string* get(std::string_view name) const;
  // How many fields `name` has (a field that must come once, sent twice).
  size_t count(std::string_view name) const;
  // Built in place (the strings given are moved in): no temporary Header to
  // move again. Not emplace_back(name, value): clang before 16 cannot build an
  // aggregate from parentheses, and the fuzz build uses clang 14.
  void add(std::string name, std::string value) {
    ++changes_;
    Header& h = headers_.emplace_back();
    h.name = std::move(name);
    h.value = std::move(value);
  }
  // The same for bytes that are not a string yet (a field being decoded):
  // copied once, straight into the map. They must not point into this map,
  // which adding may move.
  void addCopy(std::string_view name, std::string_view value) {
    ++changes_;
    Header& h = headers_.emplace_back();
    // append, not assign: into an empty string it is a plain copy, where
    // assign takes libstdc++'s general replace path (twice the instructions).
    h.name.append(name);
    h.value.append(value);
  }
  // Moves the fields out, leaving the map empty.
  std::vector<Header> release() {
    ++changes_;
    return std::exchange(headers_, {});
  }
  // Replaces every value of `name` by one.
  void set(std::string_view name, std::string value);
  // Removes every value of `name`; returns how many were removed.
  size_t remove(std::string_view name);
  void clear() {
    ++changes_;
    headers_.clear();
  }
  void reserve(size_t n) { headers_.reserve(n); }
  // Moves every field of `other` to the end of this map.
  void append(HeaderMap&& other);

  bool empty() const { return headers_.empty(); }
  size_t size() const { return headers_.size(); }
  const_iterator begin() const { return headers_.begin(); }
  const_iterator end() const { return headers_.end(); }
  // Total of name and value lengths, as HTTP/2 counts a header list (plus 32 per field).
  size_t byteSize() const;
  // Counts every change: the filter chain compares it around a filter's
  // hooks to check only what a filter changed (FilterChain).
  uint32_t changes() const { return changes_; }

 private:
  uint32_t changes_ = 0;
  std::vector<Header> headers_;
};

// ":method", ":path", ...: the fields HTTP/2 sends before any other.
inline bool isPseudoHeader(std::string_view name) { return !name.empty() && name[0] == ':'; }

// A request's header block made of two maps, neither copied: the gateway's
// own fields (pseudo-headers and what it sets), then every field of
// `forwarded` that `forward` accepts. The proxy sends the client's metadata
// to the backend this way rather than copying every field into a new map
// per attempt. `forwarded` is read when the block is sent and must live
// until then.
struct HeaderBlock {
  HeaderMap own;
  const HeaderMap* forwarded = nullptr;
  bool (*forward)(const Header&) = nullptr;

  // Calls fn(const Header&) for every field, pseudo-headers first (HTTP/2
  // requires it, whatever order they were added in).
  template <typename F>
  void forEach(F fn) const {
    auto pass = [&](bool pseudo) {
      for (const auto& h : own) {
        if (isPseudoHeader(h.name) == pseudo) fn(h);
      }
      if (forwarded == nullptr) return;
      for (const auto& h : *forwarded) {
        if (isPseudoHeader(h.name) == pseudo && (forward == nullptr || forward(h))) fn(h);
      }
    };
    pass(true);
    pass(false);
  }
};

// What makes a field of `headers` one HTTP/2 must not carry (RFC 9113
// 8.2.1, 8.2.2), for the first such field: a name that is empty, has upper
// case or a character outside a token (a leading ':' is allowed), a
// connection-specific field or te other than "trailers", a value with NUL,
// CR or LF. Empty when all are valid. (A value may start or end with a
// space or tab: gRPC stacks send such values and accept them.)
std::string invalidHeaderField(const HeaderMap& headers);

// A value without the spaces and tabs around it, which are not part of it
// (RFC 9110 5.5): what to compare when a value is a credential or a key.
std::string_view trimBlanks(std::string_view value);

// `text` equals `lower` (written in lowercase) but for the case of ASCII
// letters: how HTTP compares field names, tokens and media types. No
// locale, no libc call per byte.
bool equalsLowercaseAscii(std::string_view text, std::string_view lower);

// connection, keep-alive, proxy-connection, transfer-encoding, upgrade: the
// fields that describe one HTTP/1 hop, which HTTP/2 forbids (RFC 9113 8.2.2).
bool isConnectionSpecificHeader(std::string_view name);

// gRPC metadata key syntax: non-empty, lower-case letters, digits, '-', '_'
// and '.' (so never a pseudo-header).
bool isValidMetadataKey(std::string_view key);
// Keys that gRPC or HTTP/2 itself owns (grpc-*, pseudo-headers, content-type,
// te, host and the connection-specific headers): a filter that set or removed
// one would break the call rather than change its metadata.
bool isReservedMetadataKey(std::string_view key);
// Why metadata `key` cannot tell callers apart (a rate limit's key, a
// hash_header): "" when it can. Reserved keys are no caller's name, and
// x-request-id is new on every call (the gateway makes one per call), so
// keying by it gives every call its own bucket or a random draw.
std::string_view whyNotACallerKey(std::string_view key);
// A header name as configured ("X-User-Id") as HTTP/2 carries it: in lower
// case ("x-user-id"), which is how requests arrive.
std::string headerName(std::string_view configured);

}  // namespace sluice
