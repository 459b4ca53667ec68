#pragma once
// HfStyleModel: adapts a module whose forward has Hugging Face's legacy shape,
//     forward(input_ids, past_key_values, attention_mask, position_ids) -> (logits, past_key_values)
// with the past as one (key, value) pair per layer, each [rows, kv_heads, cached, head_dim], and
// logits [rows, T, vocab]. The adapter keeps the past per row (HfStyleCache) and reorders it
// for beams with index_select, so children of one beam never share mutable state.
//
// Example (a C++ module; see adapters/torchscript.hpp for TorchScript):
//   struct MyLM : torch::nn::Module {
//     std::pair<at::Tensor, lmdecode::HfStylePast> forward(const at::Tensor& ids, const lmdecode::HfStylePast& past,
//                                                         const at::Tensor& mask, const at::Tensor& pos);
//   };
//   auto lm = std::make_shared<MyLM>();
//   auto model = lmdecode::HfStyleModel::from_module(lm);
//   lmdecode::GreedyDecoder decoder(model, config);

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "lmdecode/detail/row_index.hpp"
#include "lmdecode/error.hpp"
#include "lmdecode/model.hpp"

namespace lmdecode {

namespace detail {

/// The device of the first tensor in `tensors` (a module's parameters or buffers), if any.
template <class Tensors>
std::optional<at::Device> first_device(const Tensors& tensors) {
  for (const auto& t : tensors) return t.device();
  return std::nullopt;
}

}  // namespace detail

/// HF's legacy past: per layer a (key, value) pair.
using HfStylePast = std::vector<std::pair<at::Tensor, at::Tensor>>;

/// The per-row past of an HF-style module, reorderable for beam search.
class HfStyleCache {
 public:
  int64_t length() const { return past_.empty() ? 0 : past_.front().first.size(2); }
  const HfStylePast& past() const { return past_; }
  void replace(HfStylePast past) { past_ = std::move(past); }

  /// Row i takes what row `row_index[i]` held.
  void reorder(const at::Tensor& row_index) {
    detail::check_row_index("HfStyleCache", row_index, past_.empty() ? 0 : past_.front().first.size(0),
                            past_.empty() ? std::nullopt : std::optional(past_.front().first.device()));
    for (auto& [key, value] : past_) {
      key = key.index_select(0, row_index);
      value = value.index_select(0, row_index);
    }
  }

  /// Forgets every position from `length` on (speculative decoding drops the drafts it rejects).
  void crop(int64_t length) {
    detail::check(length >= 0 && length <= this->length(), "HfStyleCache::crop({}) outside [0, {}]", length, this->length());
    for (auto& [key, value] : past_) {
      key = key.narrow(2, 0, length);
      value = value.narrow(2, 0, length);
    }
  }

 private:
  HfStylePast past_;
};

class HfStyleModel {
 public:
  using Cache = HfStyleCache;
  /// (input_ids, past, attention_mask, position_ids) -> (logits [rows, T, vocab], new past).
  using ForwardFn = std::function<std::pair<at::Tensor, HfStylePast>(const at::Tensor&, const HfStylePast&,
                                                                   const at::Tensor&, const at::Tensor&)>;

  /// `vocab_size`, when given, is checked against the prompt's ids before the module sees them (an id
  /// outside a GPU module's embedding is a device-side assert) and against the logits the module returns.
  HfStyleModel(ForwardFn forward, at::Device device, std::optional<int64_t> vocab_size = std::nullopt)
      : forward_(std::move(forward)), device_(device), vocab_size_(vocab_size) {
    detail::check(!vocab_size || *vocab_size >= 1, "vocab_size must be at least 1 (got {})", vocab_size.value_or(0));
  }

  /// Wraps a C++ module (held by shared_ptr) with forward(ids, past, mask, positions) -> pair(logits, past).
  /// Its device is that of its first parameter, else of its first buffer (CPU if it has neither).
  template <class Module>
  static HfStyleModel from_module(std::shared_ptr<Module> module, std::optional<int64_t> vocab_size = std::nullopt) {
    auto device = detail::first_device(module->parameters());
    if (!device) device = detail::first_device(module->buffers());
    return HfStyleModel(
        [module](const at::Tensor& ids, const HfStylePast& past, const at::Tensor& mask, const at::Tensor& pos) {
          return module->forward(ids, past, mask, pos);
        },
        device.value_or(at::kCPU), vocab_size);
  }

  at::Device device() const { return device_; }
  std::optional<int64_t> vocab_size() const { return vocab_size_; }
  HfStyleCache make_cache(int64_t /*rows*/, int64_t /*capacity*/) const { return {}; }

  at::Tensor forward(const ForwardBatch& batch, HfStyleCache& cache) {
    const int64_t rows = batch.input_ids.size(0), fed = batch.input_ids.size(1);
    if (vocab_size_ && cache.length() == 0) detail::check_prompt_in_vocabulary(batch.input_ids, *vocab_size_);
    auto [logits, past] = forward_(batch.input_ids, cache.past(), batch.attention_mask, batch.position_ids);
    detail::check<model_error>(logits.defined() && logits.dim() == 3 && logits.size(0) == rows && logits.size(1) == fed,
                               "the module returned logits of shape [{}], expected [{}, {}, vocab]",
                               logits.defined() ? fmt::format("{}", fmt::join(logits.sizes(), ", ")) : "undefined",
                               rows, fed);
    detail::check<model_error>(!vocab_size_ || logits.size(2) == *vocab_size_,
                               "the module returned logits over {} tokens, but its vocab_size is {}", logits.size(2),
                               vocab_size_.value_or(0));
    check_past(past, rows, cache.length() + fed);
    cache.replace(std::move(past));
    return batch.all_logits ? logits : logits.select(1, fed - 1);
  }

 private:
  void check_past(const HfStylePast& past, int64_t rows, int64_t length) const {
    detail::check<model_error>(!past.empty(), "the module returned an empty past_key_values");
    for (size_t l = 0; l < past.size(); ++l)
      for (const auto* t : {&past[l].first, &past[l].second})
        detail::check<model_error>(t->defined() && t->dim() == 4 && t->size(0) == rows && t->size(2) == length &&
                                       t->device() == device_,
                                   "past_key_values layer {} has shape [{}] on {}, expected [{}, heads, {}, head_dim] on {}",
                                   l, t->defined() ? fmt::format("{}", fmt::join(t->sizes(), ", ")) : "undefined",
                                   t->defined() ? t->device().str() : "-", rows, length, device_.str());
  }

  ForwardFn forward_;
  at::Device device_;
  std::optional<int64_t> vocab_size_;
};

}  // namespace lmdecode
