// Reading the gateway's counters from its admin endpoint (GET /stats, one
// "name: value" line per counter) in e2e tests.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sluice::test {

// Every counter of GET /stats on `admin` ("IP:port"); fails the test unless
// the answer is a 200.
std::map<std::string, int64_t> readStats(const std::string& admin);
// One counter of `stats`; fails the test when there is no such line.
int64_t statValue(const std::map<std::string, int64_t>& stats, const std::string& name);
// One counter, read afresh.
int64_t statValue(const std::string& admin, const std::string& name);

// GET /stats/prometheus text: the sum of `name`'s samples whose label text
// contains every one of `needles` (0 when none).
double metric(const std::string& text, const std::string& name, const std::vector<std::string>& needles);
// Runs `promtool check metrics` on `text` (written to `file` first); fails the
// test with promtool's output unless it passes.
void checkWithPromtool(const std::string& text, const std::string& file);

}  // namespace sluice::test
