#pragma once
// Logits processors: in-place edits of one step's scores, applied in a fixed order.
// Greedy search passes float32 logits, beam search float32 log-probs (HF_SEMANTICS §4).
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

  void apply(const at::Tensor& input_ids, at::Tensor& scores) override {
    for (auto& p : processors_) p->apply(input_ids, scores);
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
