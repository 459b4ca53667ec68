#pragma once
// Running one golden generate() case (schema: tests/data/hf-reference/README.md) through our
// decoders and describing the first difference. Shared by lmdecode-conformance and the tests.

#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "lmdecode/lmdecode.hpp"

namespace lmdecode_test {

/// The model dtype of a golden block's name: "f64" or "f32"; anything else is an error.
inline at::ScalarType golden_dtype(const std::string& name) {
  if (name == "f64") return at::kDouble;
  if (name == "f32") return at::kFloat;
  throw std::invalid_argument(fmt::format("unknown golden dtype \"{}\" (f64 or f32)", name));
}

struct Tolerance {
  double relative;
  double absolute;
  bool close(double ours, double ref) const { return std::abs(ours - ref) <= relative * std::abs(ref) + absolute; }
};

/// The README's tolerances for scores and log-probs.
inline Tolerance golden_tolerance(const std::string& dtype) {
  return golden_dtype(dtype) == at::kDouble ? Tolerance{1e-5, 1e-6} : Tolerance{1e-4, 1e-5};
}

/// "" when each hypothesis's per-token log-probs equal the reference rows `logprobs` within `tol`.
inline std::string compare_token_logprobs(const std::vector<const lmdecode::Hypothesis*>& flat,
                                          const nlohmann::json& logprobs, Tolerance tol) {
  if (logprobs.size() != flat.size())
    return fmt::format("{} hypotheses returned, reference has {} rows of token_logprobs", flat.size(), logprobs.size());
  for (size_t r = 0; r < logprobs.size(); ++r) {
    const auto& row = logprobs[r];
    if (row.size() != flat[r]->token_logprobs.size())
      return fmt::format("row {}: {} log-probs vs {}", r, flat[r]->token_logprobs.size(), row.size());
    for (size_t j = 0; j < row.size(); ++j)
      if (!tol.close(flat[r]->token_logprobs[j], row[j].get<double>()))
        return fmt::format("row {} token {}: log-prob {:.9g} vs {:.9g}", r, j, flat[r]->token_logprobs[j],
                           row[j].get<double>());
  }
  return "";
}

/// "" when `ours` reproduces the reference block `ref` (tokens exactly, scores within `tol`), else what differs.
inline std::string compare_with_reference(const lmdecode::GenerationResult& ours, const nlohmann::json& ref, bool beam,
                                          Tolerance tol) {
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
  if (ref.contains("finish_reasons")) {
    const auto& reasons = ref.at("finish_reasons");
    if (reasons.size() != flat.size())
      return fmt::format("{} hypotheses returned, reference has {} finish reasons", flat.size(), reasons.size());
    for (size_t r = 0; r < flat.size(); ++r)
      if (lmdecode::to_string(flat[r]->finish_reason) != reasons[r].get<std::string>())
        return fmt::format("row {} finished with {}, reference with {}", r, lmdecode::to_string(flat[r]->finish_reason),
                           reasons[r].get<std::string>());
  }
  if (beam) {
    const auto& scores = ref.at("sequences_scores");
    if (scores.size() != flat.size())
      return fmt::format("{} hypotheses returned, reference has {} sequences_scores", flat.size(), scores.size());
    for (size_t r = 0; r < scores.size(); ++r)
      if (!tol.close(flat[r]->score, scores[r].get<double>()))
        return fmt::format("row {} score {:.9g} vs {:.9g}", r, flat[r]->score, scores[r].get<double>());
  }
  // Greedy cases always carry per-token log-probs; beam cases where transformers'
  // compute_transition_scores made them (make_cases.py).
  if (beam && !ref.contains("token_logprobs")) return "";
  return compare_token_logprobs(flat, ref.at("token_logprobs"), tol);
}

/// The dtypes a golden case must be reproduced in (its "check"): at least one, each known and with
/// its block present.
inline std::vector<std::string> golden_checks(const nlohmann::json& golden_case) {
  std::vector<std::string> dtypes;
  for (const auto& d : golden_case.at("check")) {
    const std::string name = d.get<std::string>();
    golden_dtype(name);
    if (!golden_case.contains(name)) throw std::invalid_argument(fmt::format("\"check\" lists {} but the case has no {} block", name, name));
    dtypes.push_back(name);
  }
  if (dtypes.empty()) throw std::invalid_argument("the case's \"check\" is empty: it would test nothing");
  return dtypes;
}

/// The models a golden-case file names, each loaded once per dtype from `dir`, with its checkpoint's
/// generation defaults and the cache layout asked for.
class GoldenModels {
 public:
  struct Loaded {
    std::unique_ptr<lmdecode::PretrainedModel> model;
    lmdecode::GenerationConfig defaults;
  };

  GoldenModels(std::filesystem::path dir, at::Device device,
               lmdecode::CacheLayout layout = lmdecode::CacheLayout::shared_prompt)
      : dir_(std::move(dir)), device_(device), layout_(layout) {}

  Loaded& get(const std::string& name, const std::string& dtype) {
    auto& slot = loaded_[name + "/" + dtype];
    if (!slot.model) {
      const auto folder = dir_ / name;
      slot.model = lmdecode::load_pretrained(folder, {device_, golden_dtype(dtype)});
      slot.model->set_cache_layout(layout_);
      slot.defaults = lmdecode::load_checkpoint_generation_config(folder, slot.model->config());
    }
    return slot;
  }

 private:
  std::filesystem::path dir_;
  at::Device device_;
  lmdecode::CacheLayout layout_;
  std::map<std::string, Loaded> loaded_;
};

/// Runs `golden_case` on `model` with the checkpoint's generation defaults `defaults` overlaid by
/// the case's params, and compares with its `dtype` block. Returns "" on a match.
template <lmdecode::CausalLM Model>
std::string check_golden_case(Model& model, const lmdecode::GenerationConfig& defaults,
                              const nlohmann::json& golden_case, const std::string& dtype) {
  try {
    auto config = lmdecode::generation_config_from_json(golden_case.at("params"), defaults, "case params");
    auto prompts = golden_case.at("prompts").get<std::vector<lmdecode::TokenIds>>();
    const bool beam = golden_case.at("kind") == "beam";
    auto result = beam ? lmdecode::BeamSearchDecoder(model, config).generate(prompts)
                       : lmdecode::GreedyDecoder(model, config).generate(prompts);
    return compare_with_reference(result, golden_case.at(dtype), beam, golden_tolerance(dtype));
  } catch (const std::exception& e) {
    return std::string("threw: ") + e.what();
  }
}

}  // namespace lmdecode_test
