#pragma once
// Logits processors: in-place edits of one step's scores, applied in a fixed order.
// Greedy search passes float32 logits, beam search float32 log-probs (DECODING_RULES.md §4).
//
// Example:
//   lmdecode::LogitsProcessorList processors;
//   processors.add(std::make_shared<lmdecode::RepetitionPenalty>(1.2));
//   processors.add([](const at::Tensor& ids, at::Tensor& scores) { scores.select(1, 0).fill_(-INFINITY); });
//   processors.apply(input_ids, scores);  // each member in insertion order

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "lmdecode/error.hpp"

namespace lmdecode {

/// One edit of the scores. `input_ids` is each row's whole history ([rows, cur]: left-padded prompt,
/// then the tokens generated so far); `scores` is [rows, vocab], float32, edited in place.
class LogitsProcessor {
 public:
  virtual ~LogitsProcessor() = default;
  virtual void apply(const at::Tensor& input_ids, at::Tensor& scores) = 0;
};

/// An ordered chain of processors; it shares ownership of its members and applies them in insertion order.
class LogitsProcessorList : public LogitsProcessor {
 public:
  /// A processor written as a function of (input_ids, scores) that edits scores in place.
  using Function = std::function<void(const at::Tensor& input_ids, at::Tensor& scores)>;

  void add(std::shared_ptr<LogitsProcessor> processor) { processors_.push_back(std::move(processor)); }
  void add(Function function) { processors_.push_back(std::make_shared<FunctionProcessor>(std::move(function))); }
  bool empty() const { return processors_.empty(); }
  size_t size() const { return processors_.size(); }

  /// Applies each member in turn. A member that replaced `scores` by a tensor of another shape, dtype
  /// or device is an error: the decoder would read the wrong tokens, or mix devices.
  void apply(const at::Tensor& input_ids, at::Tensor& scores) override {
    const auto sizes = scores.sizes().vec();
    const auto dtype = scores.scalar_type();
    const auto device = scores.device();
    for (size_t i = 0; i < processors_.size(); ++i) {
      processors_[i]->apply(input_ids, scores);
      detail::check(
          scores.sizes() == at::IntArrayRef(sizes) && scores.scalar_type() == dtype && scores.device() == device,
          "logits processor {} of {} turned the [{}] {} scores on {} into [{}] {} on {}: processors edit the scores "
          "in place", i + 1, processors_.size(), fmt::join(sizes, ", "), c10::toString(dtype), device.str(),
          fmt::join(scores.sizes(), ", "), c10::toString(scores.scalar_type()), scores.device().str());
    }
  }

 private:
  class FunctionProcessor : public LogitsProcessor {
   public:
    explicit FunctionProcessor(Function f) : f_(std::move(f)) {}
    void apply(const at::Tensor& input_ids, at::Tensor& scores) override { f_(input_ids, scores); }

   private:
    Function f_;
  };

  std::vector<std::shared_ptr<LogitsProcessor>> processors_;
};

}  // namespace lmdecode
