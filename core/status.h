// Status values: how errors travel on the data path and through config loading.
//
// A Status is a gRPC status code plus a human-readable message. Code that can
// fail returns a Status (or StatusOr<T>) instead of throwing; a boundary (the
// codec, the binary's main) turns it into a gRPC status on the wire or a log line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace sluice {

// The gRPC status codes, numbered as on the wire (grpc-status).
enum class StatusCode : uint8_t {
  Ok = 0,
  Cancelled = 1,
  Unknown = 2,
  InvalidArgument = 3,
  DeadlineExceeded = 4,
  NotFound = 5,
  AlreadyExists = 6,
  PermissionDenied = 7,
  ResourceExhausted = 8,
  FailedPrecondition = 9,
  Aborted = 10,
  OutOfRange = 11,
  Unimplemented = 12,
  Internal = 13,
  Unavailable = 14,
  DataLoss = 15,
  Unauthenticated = 16,
};

// "OK", "CANCELLED", ... as gRPC spells them; "UNKNOWN" for out-of-range values.
std::string_view statusCodeName(StatusCode code);
// Parses the upper-case name ("UNAVAILABLE"); nullopt when it is not one.
std::optional<StatusCode> statusCodeFromName(std::string_view name);

// `text` from outside (a config, a filter, a peer) fit for a message or a log
// line: control characters as \xNN, so that a NUL cannot cut a line short nor
// an escape sequence reach a terminal.
std::string printableText(std::string_view text);

class [[nodiscard]] Status {
 public:
  Status() = default;  // Ok
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }

  bool isOk() const { return code_ == StatusCode::Ok; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "UNAVAILABLE: no healthy endpoint in cluster 'x'"
  std::string toString() const;

 private:
  StatusCode code_ = StatusCode::Ok;
  std::string message_;
};

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  StatusOr(Status status) : v_(std::move(status)) {}  // NOLINT

  bool isOk() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return isOk() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace sluice
