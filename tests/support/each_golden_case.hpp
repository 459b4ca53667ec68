#pragma once
// Walking every golden case in a Catch2 test (the conformance runner has its own loop).

#include <catch2/catch.hpp>

#include <string>

#include "support/golden_cases.hpp"
#include "support/test_data.hpp"

namespace lmdecode_test {

/// Calls `check(case, dtype, loaded)` for every (case, dtype) pair of both golden files whose kind
/// is `kind` ("beam", "greedy" or "" for both), `loaded` being the case's model from `models`.
template <class Check>
int for_each_golden_run(GoldenModels& models, const std::string& kind, Check check) {
  int checked = 0;
  for (const char* file : {"cases.json", "cases-generated.json"}) {
    const auto data = lmdecode::detail::read_json_file(reference_dir() / file);
    for (const auto& c : data.at("cases")) {
      if (!kind.empty() && c.at("kind") != kind) continue;
      for (const auto& dtype : golden_checks(c)) {
        auto& loaded = models.get(c.at("model"), dtype);
        INFO(file << " case " << c.dump() << " " << dtype);
        check(c, dtype, loaded);
        ++checked;
      }
    }
  }
  return checked;
}

/// Calls `check(case, model, config)` for every (case, dtype) pair of both golden files whose kind
/// is `kind` ("beam", "greedy" or "" for both), with the case's config, on the CPU.
template <class Check>
int for_each_golden_case(const std::string& kind, Check check) {
  GoldenModels models(reference_dir(), at::kCPU);
  return for_each_golden_run(models, kind, [&](const nlohmann::json& c, const std::string&, GoldenModels::Loaded& loaded) {
    check(c, *loaded.model, lmdecode::generation_config_from_json(c.at("params"), loaded.defaults, "case params"));
  });
}

}  // namespace lmdecode_test
