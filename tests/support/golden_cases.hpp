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

/// "" when each hypothesis's per-token values (`field` of it: token_logprobs or token_scores) equal
/// the reference rows `ref` within `tol`.
inline std::string compare_token_values(const std::vector<const lmdecode::Hypothesis*>& flat, const nlohmann::json& ref,
                                        std::vector<double> lmdecode::Hypothesis::*field, const char* name,
                                        Tolerance tol) {
  if (ref.size() != flat.size())
    return fmt::format("{} hypotheses returned, reference has {} rows of {}", flat.size(), ref.size(), name);
  for (size_t r = 0; r < ref.size(); ++r) {
    const auto& row = ref[r];
    const auto& ours = flat[r]->*field;
    if (row.size() != ours.size()) return fmt::format("row {}: {} {} vs {}", r, ours.size(), name, row.size());
    for (size_t j = 0; j < row.size(); ++j)
      if (!tol.close(ours[j], row[j].get<double>()))
        return fmt::format("row {} token {}: {} {:.9g} vs {:.9g}", r, j, name, ours[j], row[j].get<double>());
  }
  return "";
}

inline std::string compare_token_logprobs(const std::vector<const lmdecode::Hypothesis*>& flat,
                                          const nlohmann::json& logprobs, Tolerance tol) {
  return compare_token_values(flat, logprobs, &lmdecode::Hypothesis::token_logprobs, "token_logprobs", tol);
}

/// "" when each step's [rows, vocab] tensor of `ours` equals the reference's (null: -inf) within `tol`.
inline std::string compare_step_tensors(const std::vector<at::Tensor>& ours, const nlohmann::json& ref, const char* name,
                                        Tolerance tol) {
  if (ours.size() != ref.size()) return fmt::format("{} steps of {} returned, reference has {}", ours.size(), name, ref.size());
  for (size_t step = 0; step < ref.size(); ++step) {
    auto got = ours[step].to(at::kCPU, at::kDouble).contiguous();
    if (got.dim() != 2 || got.size(0) != static_cast<int64_t>(ref[step].size()))
      return fmt::format("{} step {}: shape {} vs {} rows", name, step, fmt::join(got.sizes(), "x"), ref[step].size());
    auto a = got.accessor<double, 2>();
    for (int64_t r = 0; r < got.size(0); ++r) {
      const auto& row = ref[step][r];
      if (got.size(1) != static_cast<int64_t>(row.size())) return fmt::format("{} step {} row {}: vocab differs", name, step, r);
      for (int64_t v = 0; v < got.size(1); ++v) {
        const bool banned = row[v].is_null();
        const bool ok = banned ? a[r][v] == -INFINITY : tol.close(a[r][v], row[v].get<double>());
        if (!ok)
          return fmt::format("{} step {} row {} token {}: {:.9g} vs {}", name, step, r, v, a[r][v], row[v].dump());
      }
    }
  }
  return "";
}

/// "" when the result's transformers outputs (token_scores, beam_indices, each step's scores and
/// logits) equal those the reference block holds.
inline std::string compare_outputs(const lmdecode::GenerationResult& ours,
                                   const std::vector<const lmdecode::Hypothesis*>& flat, const nlohmann::json& ref,
                                   Tolerance tol) {
  if (ref.contains("token_scores")) {
    auto diff = compare_token_values(flat, ref.at("token_scores"), &lmdecode::Hypothesis::token_scores, "token_scores", tol);
    if (!diff.empty()) return diff;
  }
  if (ref.contains("beam_indices")) {
    const auto expected = ref.at("beam_indices").get<std::vector<std::vector<int64_t>>>();
    const auto got = ours.beam_indices.defined() ? ours.beam_indices.contiguous() : at::Tensor();
    if (!got.defined() || got.size(0) != static_cast<int64_t>(expected.size()))
      return fmt::format("beam_indices: {} rows returned, reference has {}", got.defined() ? got.size(0) : 0, expected.size());
    for (size_t r = 0; r < expected.size(); ++r) {
      std::vector<int64_t> mine(got[r].data_ptr<int64_t>(), got[r].data_ptr<int64_t>() + got.size(1));
      if (mine != expected[r])
        return fmt::format("beam_indices row {}: ours [{}] vs theirs [{}]", r, fmt::join(mine, ","), fmt::join(expected[r], ","));
    }
  }
  // A step's logit near 0 still carries the rounding of the model's larger values (float32: about
  // 1e-5 on logits up to 10): ten times the absolute tolerance for every value of a step.
  const Tolerance per_value{tol.relative, 10 * tol.absolute};
  if (ref.contains("step_scores")) {
    auto diff = compare_step_tensors(ours.scores, ref.at("step_scores"), "step_scores", per_value);
    if (!diff.empty()) return diff;
  }
  if (ref.contains("step_logits")) return compare_step_tensors(ours.logits, ref.at("step_logits"), "step_logits", per_value);
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
    for (size_t r = 0; r < flat.size(); ++r) {
      // The cases set no stop_sequences: a stop there is a stop string ("stop_string" in the data).
      const auto reason = flat[r]->finish_reason == lmdecode::FinishReason::stop_sequence
                              ? std::string("stop_string")
                              : std::string(lmdecode::to_string(flat[r]->finish_reason));
      if (reason != reasons[r].get<std::string>())
        return fmt::format("row {} finished with {}, reference with {}", r, reason, reasons[r].get<std::string>());
    }
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
  if (!beam || ref.contains("token_logprobs")) {
    auto diff = compare_token_logprobs(flat, ref.at("token_logprobs"), tol);
    if (!diff.empty()) return diff;
  }
  return compare_outputs(ours, flat, ref, tol);
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
/// generation defaults, the cache layout and the weight format asked for (a float32 model only:
/// float64 blocks keep their weights in float64).
class GoldenModels {
 public:
  struct Loaded {
    std::unique_ptr<lmdecode::PretrainedModel> model;
    lmdecode::GenerationConfig defaults;
  };

  GoldenModels(std::filesystem::path dir, at::Device device,
               lmdecode::CacheLayout layout = lmdecode::CacheLayout::shared_prompt,
               lmdecode::WeightFormat weights = lmdecode::WeightFormat::model_dtype)
      : dir_(std::move(dir)), device_(device), layout_(layout), weights_(weights) {}

  Loaded& get(const std::string& name, const std::string& dtype) {
    auto& slot = loaded_[name + "/" + dtype];
    if (!slot.model) {
      const auto folder = dir_ / name;
      const auto model_dtype = golden_dtype(dtype);
      slot.model = lmdecode::load_pretrained(
          folder, {device_, model_dtype, model_dtype == at::kFloat ? weights_ : lmdecode::WeightFormat::model_dtype});
      slot.model->set_cache_layout(layout_);
      slot.defaults = lmdecode::load_checkpoint_generation_config(folder, slot.model->config());
      if (std::filesystem::exists(folder / "token_texts.json")) slot.defaults.token_texts = read_token_texts(folder / "token_texts.json");
    }
    return slot;
  }

  /// transformers' own token texts (token_texts.json: each id's bytes in hex), for stop strings.
  static std::shared_ptr<const std::vector<std::string>> read_token_texts(const std::filesystem::path& path) {
    auto texts = std::make_shared<std::vector<std::string>>();
    const auto json = lmdecode::detail::read_json_file(path);
    for (const auto& hex : json.at("hex")) {
      const auto digits = hex.get<std::string>();
      std::string bytes;
      for (size_t i = 0; i + 1 < digits.size(); i += 2) bytes += static_cast<char>(std::stoi(digits.substr(i, 2), nullptr, 16));
      texts->push_back(std::move(bytes));
    }
    return texts;
  }

 private:
  std::filesystem::path dir_;
  at::Device device_;
  lmdecode::CacheLayout layout_;
  lmdecode::WeightFormat weights_;
  std::map<std::string, Loaded> loaded_;
};

/// Runs `golden_case` with the checkpoint's generation defaults `defaults` overlaid by the case's
/// params, through `decode(config, prompts)`, and compares with its `dtype` block. Returns "" on a match.
template <class Decode>
std::string check_golden_case_with(const lmdecode::GenerationConfig& defaults, const nlohmann::json& golden_case,
                                   const std::string& dtype, Decode decode) {
  try {
    auto config = lmdecode::generation_config_from_json(golden_case.at("params"), defaults, "case params");
    const auto& ref = golden_case.at(dtype);
    // transformers' output_scores / output_logits, where the reference keeps what they return.
    config.output_scores = ref.contains("token_scores") || ref.contains("beam_indices") || ref.contains("step_scores");
    config.output_logits = ref.contains("step_logits");
    auto prompts = golden_case.at("prompts").get<std::vector<lmdecode::TokenIds>>();
    const auto result = decode(config, prompts);
    return compare_with_reference(result, ref, golden_case.at("kind") == "beam", golden_tolerance(dtype));
  } catch (const std::exception& e) {
    return std::string("threw: ") + e.what();
  }
}

/// check_golden_case_with() through the decoder the case's kind names, on `model`.
template <lmdecode::CausalLM Model>
std::string check_golden_case(Model& model, const lmdecode::GenerationConfig& defaults,
                              const nlohmann::json& golden_case, const std::string& dtype) {
  return check_golden_case_with(defaults, golden_case, dtype, [&](const lmdecode::GenerationConfig& config, const auto& prompts) {
    return golden_case.at("kind") == "beam" ? lmdecode::BeamSearchDecoder(model, config).generate(prompts)
                                            : lmdecode::GreedyDecoder(model, config).generate(prompts);
  });
}

}  // namespace lmdecode_test
