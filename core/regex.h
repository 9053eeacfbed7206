// Regex: a pattern of the config (a route's "regex", a header match's
// "regex"), compiled once at load with RE2 and matched against the whole of a
// value, byte by byte (Latin-1: values are bytes, not always UTF-8). RE2 runs in time linear in the input, with no backtracking, so a
// client choosing the header values cannot make matching slow (std::regex
// can take exponential time and deep recursion on a 64 KiB header).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace re2 {
class RE2;
}

namespace sluice {

class Regex {
 public:
  // A pattern RE2 compiles into at most this many instructions; more is a
  // config error (a pattern such as "(a|b){1,1000}" would cost each match).
  static constexpr int kMaxProgramSize = 1000;

  // The compiled pattern, or nullopt with `error` saying what is wrong.
  static std::optional<Regex> compile(const std::string& pattern, std::string& error);
  ~Regex();
  Regex(const Regex&);
  Regex& operator=(const Regex&);

  // False when no text the pattern matches can start with `c` (a path
  // pattern must be able to match "/..."); true when it may.
  bool canMatchStartingWith(char c) const;

  // True if the pattern matches all of `text` (not just a part of it).
  bool fullMatch(std::string_view text) const;
  // True if it matches somewhere in `text` (anchor with ^ and $ as needed).
  bool search(std::string_view text) const;

 private:
  Regex() = default;
  // Immutable once compiled, and matched from every worker at once (RE2 is
  // safe for that): copies of a config entry share it.
  std::shared_ptr<const re2::RE2> re_;
};

}  // namespace sluice
