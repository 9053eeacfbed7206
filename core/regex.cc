#include "core/regex.h"

#include <re2/re2.h>

#include <fmt/format.h>

namespace sluice {

std::optional<Regex> Regex::compile(const std::string& pattern, std::string& error) {
  RE2::Options options;
  options.set_log_errors(false);  // the error goes to the config's errors, with its JSON path
  auto re = std::make_shared<const RE2>(pattern, options);
  if (!re->ok()) {
    error = fmt::format("not a valid regular expression (RE2 syntax): {}", re->error());
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

bool Regex::fullMatch(std::string_view text) const {
  return RE2::FullMatch(re2::StringPiece(text.data(), text.size()), *re_);
}

}  // namespace sluice
