#pragma once
// Walking every golden case in a Catch2 test (the conformance runner has its own loop).

#include <catch2/catch.hpp>

#include <string>

#include "support/golden_cases.hpp"
#include "support/test_data.hpp"

namespace lmdecode_test {

/// Calls `check(case, dtype, model, config)` for every (case, dtype) pair of both golden files
/// whose kind is `kind` ("beam", "greedy" or "" for both), with the case's config.
template <class Check>
int for_each_golden_case(const std::string& kind, Check check) {
  GoldenModels models(reference_dir(), at::kCPU);
  int checked = 0;
  for (const char* file : {"cases.json", "cases-generated.json"}) {
    const auto data = lmdecode::detail::read_json_file(reference_dir() / file);
    for (const auto& c : data.at("cases")) {
      if (!kind.empty() && c.at("kind") != kind) continue;
      for (const auto& dtype : golden_checks(c)) {
        auto& loaded = models.get(c.at("model"), dtype);
        auto config = lmdecode::generation_config_from_json(c.at("params"), loaded.defaults, "case params");
        INFO(file << " case " << c.dump() << " " << dtype);
        check(c, *loaded.model, config);
        ++checked;
      }
    }
  }
  return checked;
}

}  // namespace lmdecode_test
