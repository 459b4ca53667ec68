#pragma once
// The model side of a decoding loop, shared by every decoder: feeds each step's tokens with the
// attention mask and positions HF would use, keeps (or, without cache, rebuilds) the cache, and
// checks and casts the logits.

#include <ATen/ATen.h>

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <optional>
#include <vector>

#include "lmdecode/decoders/detail/padded_batch.hpp"
#include "lmdecode/detail/token_index.hpp"
#include "lmdecode/logits/processor.hpp"
#include "lmdecode/model.hpp"

namespace lmdecode::detail {

/// New-token positions the per-row buffers of a decoding loop (cache, mask, positions, tokens) are
/// first allocated for; they then double as needed, so memory follows the tokens, not max_new_tokens.
inline constexpr int64_t kFirstNewTokenChunk = 64;

template <CausalLM Model>
class StepRunner {
 public:
  /// `batch` holds every row the loop decodes, each prompt repeated in `copies` consecutive identical
  /// rows (its beams, or its sampled sequences); `pad_token_id` is fed for left padding and after a
  /// row ends, so it must be a token of the model. With `kept` (one row, one copy: Conversation), the
  /// loop continues that cache, which already holds the row's first kept->length() tokens, and leaves
  /// in it what it fed.
  StepRunner(Model& model, const PaddedBatch& batch, int64_t copies, int64_t max_new_tokens, bool use_cache,
             int64_t pad_token_id, typename Model::Cache* kept = nullptr)
      : model_(model), rows_(batch.input_ids.size(0)), copies_(copies), use_cache_(use_cache), pad_token_id_(pad_token_id) {
    const int64_t capacity = batch.input_ids.size(1) + std::min(max_new_tokens, kFirstNewTokenChunk);
    mask_ = batch.attention_mask;
    positions_ = batch.position_ids;
    grow_columns(capacity);
    if (kept) {
      check(use_cache_ && rows_ == 1 && copies_ == 1, "a kept cache continues one row with use_cache");
      check(kept->length() < batch.input_ids.size(1), "the kept cache holds {} positions, the prompt only {}: one must be fed",
            kept->length(), batch.input_ids.size(1));
      cache_ = kept;
    } else if (use_cache_) {
      cache_ = &owned_cache_.emplace(model_.make_cache(rows_ / copies_, capacity));
    }
  }

  /// Float32 logits for the next token after each of the last `positions` tokens of `sequence`
  /// ([rows, cur], the whole history, column-aligned with the cache): [rows, vocab] for one position,
  /// else [rows, positions, vocab].
  at::Tensor next_logits(const at::Tensor& sequence, int64_t positions = 1) {
    const int64_t cur = columns_fed_ = sequence.size(1);
    if (cur > mask_.size(1)) grow_columns(std::max(cur, 2 * mask_.size(1)));
    at::Tensor logits;
    // The prefill runs each prompt once, not once per copy: the copies are identical, so their keys,
    // values and logits are copied afterwards ((copies - 1) / copies of the prefill saved).
    const bool prefill_once = use_cache_ && copies_ > 1 && !expanded_;
    auto fed_rows = [&](const at::Tensor& t) { return prefill_once ? t.slice(0, 0, rows_, copies_) : t; };
    const int64_t from = use_cache_ ? cache_->length() : 0;
    ForwardBatch batch{fed_rows(sequence.narrow(1, from, cur - from)), fed_rows(mask_.narrow(1, 0, cur)),
                       fed_rows(positions_.narrow(1, from, cur - from)), positions > 1};
    if (use_cache_) {
      logits = model_.forward(batch, *cache_);
    } else {
      auto scratch = model_.make_cache(rows_, cur);
      logits = model_.forward(batch, scratch);
    }
    if (positions > 1) {
      check<model_error>(logits.dim() == 3 && logits.size(1) == cur - from,
                         "the model returned logits of shape [{}] for {} fed positions with all_logits",
                         fmt::join(logits.sizes(), ", "), cur - from);
      logits = logits.narrow(1, cur - from - positions, positions);
    }
    check_logits(positions > 1 ? logits.select(1, 0) : logits, prefill_once ? rows_ / copies_ : rows_, vocab_, sequence.device());
    if (prefill_once) {
      auto prompt_of_row = at::arange(rows_ / copies_, sequence.options()).repeat_interleave(copies_);
      expand_cache_rows(prompt_of_row);
      expanded_ = true;
      logits = logits.index_select(0, prompt_of_row);
    }
    if (vocab_ < 0)
      check(is_token(pad_token_id_, logits.size(-1)), "pad_token_id {} is not a token of this model (vocabulary {})",
            pad_token_id_, logits.size(-1));
    vocab_ = logits.size(-1);
    // HF casts to float32 before any decoding arithmetic, whatever the model dtype.
    auto scores = logits.to(at::kFloat);
    // Remembered on the device; read with the decoder's own per-step host read (read_flag). A row's
    // max is NaN where it holds one: amax is vectorised where isnan().any() over [8, 32000] took
    // 0.28 ms on the CPU, 2% of a small model's step.
    auto bad = scores.amax(-1).isnan().any();
    non_finite_ = non_finite_.defined() ? non_finite_.logical_or(bad) : bad;
    ++steps_;
    return scores;
  }

  /// Of the last `fed` positions, row r keeps the first kept[r] ([rows] int64, read here): the
  /// others become masked holes (no later query attends them), and the positions fed later continue
  /// from the last kept one, so that each row decodes as if the dropped tokens had never been fed.
  /// What every row drops at the end is removed instead (the cache cropped): the history's next
  /// column is returned, first + max(kept) where `first` is the first of the `fed` columns.
  int64_t drop_unkept(int64_t fed, const at::Tensor& kept) {
    const int64_t first = columns_fed_ - fed;
    const auto host = kept.to(at::kCPU);
    const int64_t most = host.max().item<int64_t>(), end = first + most;
    if (end < columns_fed_) crop_columns(end);
    if (host.min().item<int64_t>() < most) {
      auto keep = at::arange(most, kept.options()).unsqueeze(0) < kept.unsqueeze(1);  // [rows, most]
      mask_.narrow(1, first, most).mul_(keep);
      if (!dropped_.defined()) dropped_ = at::zeros_like(mask_, mask_.options().dtype(at::kBool));
      dropped_.narrow(1, first, most).logical_or_(keep.logical_not());
    }
    const int64_t cur = columns_fed_, later = positions_.size(1) - cur;
    auto last_kept = positions_.narrow(1, 0, cur);
    if (dropped_.defined()) last_kept = last_kept.masked_fill(dropped_.narrow(1, 0, cur), -1);
    if (later > 0) positions_.narrow(1, cur, later).copy_(last_kept.amax(1, true) + at::arange(1, later + 1, positions_.options()));
    return cur;
  }

  /// `processors` on `scores` after each row's first `upto` columns of `sequence` (the history);
  /// where positions were dropped, row by row on the row's prompt and kept tokens, so that each
  /// row's processors see its history as it would be without them.
  void process(LogitsProcessorList& processors, const at::Tensor& sequence, int64_t upto, at::Tensor& scores) const {
    if (processors.empty()) return;
    if (!dropped_.defined()) {
      processors.apply(upto == sequence.size(1) ? sequence : sequence.narrow(1, 0, upto), scores);
      return;
    }
    for (int64_t r = 0; r < rows_; ++r) {
      at::Tensor row_scores = scores.narrow(0, r, 1).clone();
      processors.apply(kept_history(sequence, r, upto), row_scores);
      scores.narrow(0, r, 1).copy_(row_scores);
    }
  }

  /// Positions fed so far (the history's columns at the last forward).
  int64_t columns_fed() const { return columns_fed_; }

  /// Row r's history in its first `upto` columns of `sequence`, its dropped positions left out: [1, n].
  at::Tensor kept_history(const at::Tensor& sequence, int64_t r, int64_t upto) const {
    auto row = sequence.narrow(0, r, 1).narrow(1, 0, upto);
    return row.masked_select(dropped_.narrow(0, r, 1).narrow(1, 0, upto).logical_not()).unsqueeze(0);
  }

  /// Remembers that some row had no distribution to sample from (`invalid`, a bool scalar on the
  /// device, from detail::draw_from_softmax); read with the next read_flag.
  void note_undrawable(const at::Tensor& invalid) {
    undrawable_ = undrawable_.defined() ? undrawable_.logical_or(invalid) : invalid;
  }

  /// Copies `values` (bool or int64 tensors on the device) to the host in one device-to-host read,
  /// together with the flags of what went wrong so far, and throws if something did. Returns the
  /// values in order, as int64 host tensors of their shapes.
  std::vector<at::Tensor> read(const std::vector<at::Tensor>& values) {
    auto host = copy_to_host(values).to(at::kLong);
    std::vector<at::Tensor> out;
    int64_t offset = 0;
    for (const auto& v : values) {
      out.push_back(host.narrow(0, offset, v.numel()).view(v.sizes()));
      offset += v.numel();
    }
    return out;
  }

  /// read() of one bool scalar, with no ATen call on the host copy.
  bool read_flag(const at::Tensor& flag) { return host_value(copy_to_host({flag}), 0) != 0; }

  /// The filled bytes of the cache, where its type can say (KVCache::bytes()); else 0.
  int64_t cache_bytes() const {
    if constexpr (requires(const typename Model::Cache& c) { { c.bytes() } -> std::convertible_to<int64_t>; }) {
      return cache_ ? cache_->bytes() : 0;
    } else {
      return 0;
    }
  }

  /// Row i continues what row `row_index[i]` was (beam search).
  void reorder(const at::Tensor& row_index) {
    if (use_cache_) cache_->reorder(row_index);
  }

 private:
  /// HF appends a 1 to the mask and last position + 1 to the positions every step: extends both to
  /// `columns` columns.
  void grow_columns(int64_t columns) {
    const int64_t more = columns - mask_.size(1);
    auto last = positions_.narrow(1, positions_.size(1) - 1, 1);
    mask_ = at::cat({mask_, at::ones({rows_, more}, mask_.options())}, 1);
    positions_ = at::cat({positions_, last + at::arange(1, more + 1, positions_.options())}, 1);
    if (dropped_.defined()) dropped_ = at::cat({dropped_, at::zeros({rows_, more}, dropped_.options())}, 1);
  }

  /// Forgets the fed columns from `end` on: the cache crops them (a cache type without crop() cannot
  /// drop positions), and the mask and holes there are reset for the columns fed next.
  void crop_columns(int64_t end) {
    const int64_t count = columns_fed_ - end;
    if (use_cache_) {
      if constexpr (requires(typename Model::Cache& c) { c.crop(end); }) cache_->crop(end);
      else check(false, "this model's cache type has no crop(): it cannot drop fed positions (speculative decoding)");
    }
    mask_.narrow(1, end, count).fill_(1);
    if (dropped_.defined()) dropped_.narrow(1, end, count).fill_(false);
    columns_fed_ = end;
  }

  /// Each prompt's row of the cache becomes its `copies_` rows: the cache's own expand_rows where it
  /// has one (a KVCache then shares the prompt), else a reorder that repeats each row.
  void expand_cache_rows(const at::Tensor& prompt_of_row) {
    if constexpr (requires(typename Model::Cache& c) { c.expand_rows(int64_t{1}); }) {
      cache_->expand_rows(copies_);
    } else {
      cache_->reorder(prompt_of_row);
    }
  }

  /// One device-to-host copy of `values` (flattened, in order) followed by the error flags; throws
  /// if one is set. No item() on it: a step waits on the device for this copy alone.
  at::Tensor copy_to_host(const std::vector<at::Tensor>& values) const {
    std::vector<at::Tensor> parts;
    int64_t total = 0;
    for (const auto& v : values) {
      parts.push_back(v.reshape({-1}));
      total += v.numel();
    }
    parts.push_back(non_finite_.reshape({1}));
    if (undrawable_.defined()) parts.push_back(undrawable_.reshape({1}));
    auto host = at::cat(parts).to(at::kCPU);
    check<model_error>(host_value(host, total) == 0, "the model returned NaN logits (by step {})", steps_);
    check(!undrawable_.defined() || host_value(host, total + 1) == 0,
          "a sampled row had no token to draw by step {}: the logits processors removed every token, or a logit was +inf",
          steps_);
    return host;
  }

  /// Element i of a 1-D contiguous bool or int64 host tensor.
  static int64_t host_value(const at::Tensor& host, int64_t i) {
    return host.scalar_type() == at::kBool ? host.data_ptr<bool>()[i] : host.data_ptr<int64_t>()[i];
  }

  Model& model_;
  int64_t rows_;
  int64_t copies_;  // identical consecutive rows per prompt
  bool use_cache_;
  int64_t pad_token_id_;
  int64_t vocab_ = -1;  // fixed by the first step
  int64_t steps_ = 0;
  int64_t columns_fed_ = 0;  // history columns fed so far
  bool expanded_ = false;    // the cache holds every row's copies (after the first forward, with copies_ > 1)
  at::Tensor non_finite_;  // bool scalar on the device: any NaN in the logits so far
  at::Tensor undrawable_;  // bool scalar on the device, once sampling: a row had nothing to draw
  at::Tensor mask_;       // [rows, columns allocated so far]
  at::Tensor positions_;  // [rows, columns allocated so far]
  at::Tensor dropped_;    // [rows, columns allocated so far] bool, once a row dropped positions (drop_unkept)
  std::optional<typename Model::Cache> owned_cache_;
  typename Model::Cache* cache_ = nullptr;  // owned_cache_'s, or the kept one
};

}  // namespace lmdecode::detail
