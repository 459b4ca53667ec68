#pragma once
// A tiny CausalLM for hand-worked decoding tests: its next-token log-probs depend only on the last
// token fed, through a fixed table, so every expected result can be derived on paper.

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <initializer_list>
#include <new>
#include <vector>

#include "lmdecode/config.hpp"
#include "lmdecode/model.hpp"

namespace lmdecode_test {

/// Counts positions only: the table model has no keys/values to keep.
struct PositionCache {
  int64_t length_ = 0;
  int64_t reorders = 0;
  int64_t length() const { return length_; }
  void reorder(const at::Tensor&) { ++reorders; }
  void crop(int64_t length) { length_ = length; }
};

class TableModel {
 public:
  using Cache = PositionCache;

  /// probabilities[t] is the next-token distribution after token t.
  explicit TableModel(const std::vector<std::vector<double>>& probabilities) {
    const auto v = static_cast<int64_t>(probabilities.size());
    table_ = at::empty({v, v}, at::kDouble);
    for (int64_t i = 0; i < v; ++i)
      for (int64_t j = 0; j < v; ++j) table_[i][j] = probabilities[i][j];
    table_ = table_.log().to(at::kFloat);
  }

  at::Device device() const { return at::kCPU; }
  PositionCache make_cache(int64_t, int64_t) const { return {}; }

  at::Tensor forward(const lmdecode::ForwardBatch& batch, PositionCache& cache) {
    cache.length_ += batch.input_ids.size(1);
    if (batch.all_logits)
      return table_.index_select(0, batch.input_ids.reshape({-1})).view({batch.input_ids.size(0), batch.input_ids.size(1), -1});
    auto last = batch.input_ids.select(1, batch.input_ids.size(1) - 1);
    return table_.index_select(0, last);
  }

 private:
  at::Tensor table_;  // [V, V] log-probs
};

/// A model that breaks the contract in a chosen way, to check the decoders' errors.
class MisbehavingModel {
 public:
  using Cache = PositionCache;
  enum class Fault { rank3, wrong_rows, changing_vocab, integer_logits, nan_logits, other_device, libtorch_error, out_of_memory };
  explicit MisbehavingModel(Fault fault) : fault_(fault) {}
  at::Device device() const { return at::kCPU; }
  PositionCache make_cache(int64_t, int64_t) const { return {}; }

  at::Tensor forward(const lmdecode::ForwardBatch& batch, PositionCache& cache) {
    const int64_t rows = batch.input_ids.size(0);
    cache.length_ += batch.input_ids.size(1);
    switch (fault_) {
      case Fault::rank3: return at::zeros({rows, 1, 5});
      case Fault::wrong_rows: return at::zeros({rows + 1, 5});
      case Fault::changing_vocab: return at::zeros({rows, 5 + cache.length_});
      case Fault::integer_logits: return at::zeros({rows, 5}, at::kLong);
      case Fault::nan_logits:  // one NaN among finite logits, from step 2
        return cache.length_ > 1 ? at::zeros({rows, 5}).index_fill_(1, at::tensor(std::vector<int64_t>{3}), NAN) : at::zeros({rows, 5});
      case Fault::other_device: return at::zeros({rows, 5}, at::TensorOptions().device(at::kMeta));
      case Fault::libtorch_error: TORCH_CHECK(false, "a kernel refused the shapes");
      case Fault::out_of_memory: throw std::bad_alloc();
    }
    return {};
  }

 private:
  Fault fault_;
};

/// The hand-worked example of the decoder tests: tokens a, b and EOS.
namespace abc {
constexpr int64_t A = 0, B = 1, EOS = 2;

/// After a: a .5, b .3, EOS .2; after b: a .1, b .1, EOS .8; after EOS: uniform.
inline TableModel abc_model() { return TableModel({{0.5, 0.3, 0.2}, {0.1, 0.1, 0.8}, {1.0 / 3, 1.0 / 3, 1.0 / 3}}); }

/// The log of a product of probabilities: a hand-worked sequence's score.
inline double lp(std::initializer_list<double> probabilities) {
  double sum = 0;
  for (double p : probabilities) sum += std::log(p);
  return sum;
}

inline lmdecode::GenerationConfig abc_config() {
  lmdecode::GenerationConfig c;
  c.eos_token_ids = {EOS};
  c.pad_token_id = EOS;
  return c;
}
}  // namespace abc

}  // namespace lmdecode_test
