// lmdecode-conformance: runs golden generate() cases (schema: tests/data/hf-reference/README.md)
// through our decoders and reports every mismatch.
//
//   lmdecode-conformance --cases FILE --models DIR [--dtype f64|f32|all]
//
// Tokens must match exactly; scores and log-probs within 1e-5*|ref| + 1e-6 (f64) or
// 1e-4*|ref| + 1e-5 (f32). Ends with "N passed, N failed" (cases); exits 0 only if none failed.

#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "lmdecode/lmdecode.hpp"

namespace {

using nlohmann::json;

struct Tolerance {
  double relative;
  double absolute;
  bool close(double ours, double ref) const { return std::abs(ours - ref) <= relative * std::abs(ref) + absolute; }
};

lmdecode::GenerationConfig case_config(lmdecode::GenerationConfig config, const json& params) {
  return lmdecode::generation_config_from_json(params, std::move(config), "case params");
}

/// Compares one dtype's run with the reference; returns "" when it matches, else what differs.
std::string compare(const lmdecode::GenerationResult& ours, const json& ref, bool beam, Tolerance tol) {
  const auto& seqs = ref.at("sequences");
  auto got = ours.sequences.contiguous();
  if (got.size(0) != static_cast<int64_t>(seqs.size()))
    return fmt::format("{} sequences returned, reference has {}", got.size(0), seqs.size());
  for (size_t r = 0; r < seqs.size(); ++r) {
    std::vector<int64_t> mine(got[r].data_ptr<int64_t>(), got[r].data_ptr<int64_t>() + got.size(1));
    auto theirs = seqs[r].get<std::vector<int64_t>>();
    if (mine != theirs) {
      size_t i = 0;
      while (i < mine.size() && i < theirs.size() && mine[i] == theirs[i]) ++i;
      return fmt::format("row {} differs from position {}: ours [{}] vs theirs [{}]", r, i, fmt::join(mine, ","),
                         fmt::join(theirs, ","));
    }
  }
  std::vector<const lmdecode::Hypothesis*> flat;
  for (const auto& per_prompt : ours.hypotheses)
    for (const auto& h : per_prompt) flat.push_back(&h);
  if (beam) {
    const auto& scores = ref.at("sequences_scores");
    for (size_t r = 0; r < scores.size(); ++r)
      if (!tol.close(flat[r]->score, scores[r].get<double>()))
        return fmt::format("row {} score {:.9g} vs {:.9g}", r, flat[r]->score, scores[r].get<double>());
  } else {
    const auto& lps = ref.at("token_logprobs");
    for (size_t r = 0; r < lps.size(); ++r) {
      const auto& row = lps[r];
      if (row.size() != flat[r]->token_logprobs.size())
        return fmt::format("row {}: {} log-probs vs {}", r, flat[r]->token_logprobs.size(), row.size());
      for (size_t j = 0; j < row.size(); ++j)
        if (!tol.close(flat[r]->token_logprobs[j], row[j].get<double>()))
          return fmt::format("row {} token {}: log-prob {:.9g} vs {:.9g}", r, j, flat[r]->token_logprobs[j],
                             row[j].get<double>());
    }
  }
  return "";
}

int usage(const char* why) {
  std::fprintf(stderr, "lmdecode-conformance: %s\nusage: lmdecode-conformance --cases FILE --models DIR [--dtype f64|f32|all] [--device cpu|cuda]\n", why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string cases_path, models_dir, dtype_filter = "all", device_name = "cpu";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--cases") cases_path = value();
    else if (arg == "--models") models_dir = value();
    else if (arg == "--dtype") dtype_filter = value();
    else if (arg == "--device") device_name = value();
    else return usage(("unknown argument " + arg).c_str());
  }
  if (cases_path.empty() || models_dir.empty()) return usage("--cases and --models are required");
  if (dtype_filter != "f64" && dtype_filter != "f32" && dtype_filter != "all") return usage("--dtype must be f64, f32 or all");
  if (device_name != "cpu" && device_name != "cuda") return usage("--device must be cpu or cuda");
  const at::Device device = device_name == "cuda" ? at::Device(at::kCUDA) : at::Device(at::kCPU);

  try {
    const json all = lmdecode::detail::read_json_file(cases_path);
    std::map<std::string, std::unique_ptr<lmdecode::PretrainedModel>> models;
    auto model_for = [&](const std::string& name, const std::string& dtype) -> lmdecode::PretrainedModel& {
      auto& slot = models[name + "/" + dtype];
      if (!slot)
        slot = lmdecode::load_pretrained(std::filesystem::path(models_dir) / name,
                                         {device, dtype == "f64" ? at::kDouble : at::kFloat});
      return *slot;
    };
    int passed = 0, failed = 0;
    const auto& cases = all.at("cases");
    for (size_t index = 0; index < cases.size(); ++index) {
      const auto& c = cases[index];
      const std::string model_name = c.at("model");
      const bool beam = c.at("kind") == "beam";
      std::vector<lmdecode::TokenIds> prompts = c.at("prompts").get<std::vector<lmdecode::TokenIds>>();
      bool ok = true, ran = false;
      for (const auto& dtype_json : c.at("check")) {
        const std::string dtype = dtype_json;
        if (dtype_filter != "all" && dtype != dtype_filter) continue;
        ran = true;
        auto& model = model_for(model_name, dtype);
        auto config = case_config(
            lmdecode::load_checkpoint_generation_config(std::filesystem::path(models_dir) / model_name, model.config()),
            c.at("params"));
        const Tolerance tol = dtype == "f64" ? Tolerance{1e-5, 1e-6} : Tolerance{1e-4, 1e-5};
        std::string diff;
        try {
          auto result = beam ? lmdecode::BeamSearchDecoder(model, config).generate(prompts)
                             : lmdecode::GreedyDecoder(model, config).generate(prompts);
          diff = compare(result, c.at(dtype), beam, tol);
        } catch (const std::exception& e) {
          diff = std::string("threw: ") + e.what();
        }
        if (!diff.empty()) {
          ok = false;
          fmt::print("FAIL case {} {} {} {} params {}: {}\n", index, model_name, c.at("kind").get<std::string>(), dtype,
                     c.at("params").dump(), diff);
        }
      }
      if (!ran) continue;
      (ok ? passed : failed)++;
    }
    fmt::print("{} passed, {} failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lmdecode-conformance: %s\n", e.what());
    return 2;
  }
}
