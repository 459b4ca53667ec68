#pragma once
// The sampling warpers, as transformers defines them (TemperatureLogitsWarper, TopKLogitsWarper,
// TopPLogitsWarper, MinPLogitsWarper, TypicalLogitsWarper). Each keeps at least
// `min_tokens_to_keep` tokens (HF: 2 in beam sampling, else 1). Removed tokens get -inf.

#include <algorithm>
#include <limits>

#include "lmdecode/error.hpp"
#include "lmdecode/logits/processor.hpp"

namespace lmdecode {

namespace detail {
constexpr float kRemoved = -std::numeric_limits<float>::infinity();

/// Removes the tokens flagged in `sorted_remove` (flags in the order `sorted_index` lists tokens).
inline void remove_sorted(at::Tensor& scores, const at::Tensor& sorted_index, const at::Tensor& sorted_remove) {
  scores.masked_fill_(sorted_remove.scatter(1, sorted_index, sorted_remove), kRemoved);
}
}  // namespace detail

/// scores / temperature.
class Temperature : public LogitsProcessor {
 public:
  explicit Temperature(double temperature) : temperature_(temperature) {
    detail::check(temperature > 0.0, "temperature must be > 0 (got {}); for the arg max use do_sample = false", temperature);
  }
  void apply(const at::Tensor&, at::Tensor& scores) override { scores.div_(temperature_); }

 private:
  double temperature_;
};

/// Keeps the tokens scoring at least the k-th best score (so ties at the boundary stay).
class TopK : public LogitsProcessor {
 public:
  explicit TopK(int64_t top_k, int64_t min_tokens_to_keep = 1) : k_(std::max(top_k, min_tokens_to_keep)) {
    detail::check(top_k >= 1, "top_k must be >= 1 here (got {})", top_k);
  }
  void apply(const at::Tensor&, at::Tensor& scores) override {
    const int64_t k = std::min(k_, scores.size(-1));
    auto kth = std::get<0>(scores.topk(k, -1)).narrow(-1, k - 1, 1);
    scores.masked_fill_(scores < kth, detail::kRemoved);
  }

 private:
  int64_t k_;
};

/// Nucleus sampling: keeps the best tokens whose probabilities sum to top_p (the token that crosses
/// it included).
class TopP : public LogitsProcessor {
 public:
  explicit TopP(double top_p, int64_t min_tokens_to_keep = 1) : p_(top_p), keep_(min_tokens_to_keep) {
    detail::check(top_p > 0.0 && top_p <= 1.0, "top_p must be in (0, 1] (got {})", top_p);
  }
  void apply(const at::Tensor&, at::Tensor& scores) override {
    auto [sorted, index] = scores.sort(-1, /*descending=*/false);
    auto remove = sorted.softmax(-1).cumsum(-1) <= (1.0 - p_);
    remove.narrow(-1, remove.size(-1) - std::min(keep_, remove.size(-1)), std::min(keep_, remove.size(-1))).fill_(false);
    detail::remove_sorted(scores, index, remove);
  }

 private:
  double p_;
  int64_t keep_;
};

/// Drops tokens whose probability is below min_p x the best token's probability.
class MinP : public LogitsProcessor {
 public:
  explicit MinP(double min_p, int64_t min_tokens_to_keep = 1) : min_p_(min_p), keep_(min_tokens_to_keep) {
    detail::check(min_p >= 0.0 && min_p <= 1.0, "min_p must be in [0, 1] (got {})", min_p);
  }
  void apply(const at::Tensor&, at::Tensor& scores) override {
    auto probs = scores.softmax(-1);
    auto remove = probs < std::get<0>(probs.max(-1, true)) * min_p_;
    auto index = scores.argsort(-1, /*descending=*/true);
    auto sorted_remove = remove.gather(-1, index);
    sorted_remove.narrow(-1, 0, std::min(keep_, sorted_remove.size(-1))).fill_(false);
    detail::remove_sorted(scores, index, sorted_remove);
  }

 private:
  double min_p_;
  int64_t keep_;
};

/// Locally typical sampling (Meister et al. 2022): keeps the tokens whose surprisal is closest to
/// the entropy until their probability mass reaches typical_p.
class TypicalP : public LogitsProcessor {
 public:
  explicit TypicalP(double mass, int64_t min_tokens_to_keep = 1) : mass_(mass), keep_(min_tokens_to_keep) {
    detail::check(mass > 0.0 && mass <= 1.0, "typical_p must be in (0, 1] (got {})", mass);
  }
  void apply(const at::Tensor&, at::Tensor& scores) override {
    auto normalized = scores.log_softmax(-1);
    auto entropy = -(normalized * normalized.exp()).nansum(-1, true);
    auto shifted = (-normalized - entropy).abs();
    auto [sorted_shift, index] = shifted.sort(-1, /*descending=*/false);
    auto cumulative = scores.gather(-1, index).softmax(-1).cumsum(-1);
    auto last = (cumulative < mass_).sum(1).clamp_max(sorted_shift.size(-1) - 1);
    auto remove = sorted_shift > sorted_shift.gather(1, last.view({-1, 1}));
    remove.narrow(-1, 0, std::min(keep_, remove.size(-1))).fill_(false);
    detail::remove_sorted(scores, index, remove);
  }

 private:
  double mass_;
  int64_t keep_;
};

}  // namespace lmdecode
