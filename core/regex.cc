#include "core/regex.h"

#include <re2/re2.h>

#include <algorithm>

#include <fmt/format.h>

namespace sluice {

std::optional<Regex> Regex::compile(const std::string& pattern, std::string& error) {
  RE2::Options options;
  options.set_log_errors(false);  // the error goes to the config's errors, with its JSON path
  // Bytes, not UTF-8: a header value may carry bytes 0x80-0xFF (HTTP's
  // obs-text), which in UTF-8 mode "." and "[^...]" would not match, so
  // "prod.*" would fail on them and an inverted match let them through.
  options.set_encoding(RE2::Options::EncodingLatin1);
  // Compiled program and lazily built match cache: a client's crafted
  // values cannot make one pattern's cache grow past this (RE2 then runs
  // without it, still in linear time).
  options.set_max_mem(1 << 20);
  auto re = std::make_shared<const RE2>(pattern, options);
  if (!re->ok()) {
    error = fmt::format("not a valid regular expression (RE2 syntax): {}", re->error());
    return std::nullopt;
  }
  if (!std::all_of(pattern.begin(), pattern.end(), [](char c) { return c >= 0x20 && c <= 0x7e; })) {
    error = "a pattern holds only printable ASCII (write other bytes as \\xHH)";
    return std::nullopt;
  }
  if (re->ProgramSize() > kMaxProgramSize) {
    error = fmt::format("regular expression too complex: {} RE2 instructions, at most {}", re->ProgramSize(),
                        kMaxProgramSize);
    return std::nullopt;
  }
  Regex out;
  out.re_ = std::move(re);
  return out;
}

Regex::~Regex() = default;
Regex::Regex(const Regex&) = default;
Regex& Regex::operator=(const Regex&) = default;

bool Regex::canMatchStartingWith(char c) const {
  // RE2's bounds on what the pattern can match: if every match sorts before
  // "c" or at or after the character after it, none starts with c.
  std::string min, max;
  if (!re_->PossibleMatchRange(&min, &max, 8)) return true;  // unbounded: it may
  const std::string low(1, c), high(1, static_cast<char>(c + 1));
  return !(max < low || min >= high);
}

bool Regex::search(std::string_view text) const {
  return RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), *re_);
}

bool Regex::fullMatch(std::string_view text) const {
  return RE2::FullMatch(re2::StringPiece(text.data(), text.size()), *re_);
}

}  // namespace sluice
