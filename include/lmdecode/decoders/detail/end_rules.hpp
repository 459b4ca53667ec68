#pragma once
// How a row ends with its newest token (DECODING_RULES.md §5): an EOS id first, else a stop sequence
// or a stop string. The decoding loop owns one EndRules; a strategy asks it about the rows (greedy,
// sampling) or the candidates (beam search) it is choosing between.

#include <ATen/ATen.h>

#include <cstdint>

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/stop_sequences.hpp"
#include "lmdecode/decoders/detail/stop_strings.hpp"

namespace lmdecode::detail {

/// Which rows end with their newest token, and why.
struct RowEnds {
  at::Tensor eos;      // bool: ended by an EOS id
  at::Tensor stop;     // bool: ended by a stop sequence or string (and not by an EOS id)
  at::Tensor ended;    // bool: eos or stop
  at::Tensor matched;  // int64: the first stop sequence the row ends with, else stop_sequences.size() + the
                       // first stop string, -1 if none (EOS rows too)
};

class EndRules {
 public:
  EndRules(const GenerationConfig& config, at::Device device, int64_t prompt_length)
      : stops_(config.stop_sequences, device),
        stop_strings_(config.stop_strings, config.token_texts, device),
        eos_(at::tensor(config.eos_token_ids, at::TensorOptions().dtype(at::kLong).device(device))),
        prompt_length_(prompt_length) {}

  /// Whether any token can end a row before the length limit.
  bool can_end() const { return has_eos() || !stops_.empty() || !stop_strings_.empty(); }

  /// How rows whose newest token is `token` end. `sequence` ([..., >= L0 + generated]) holds each
  /// row's padded prompt, then its `generated` tokens, that token last; a stop sequence must lie
  /// within the generated ones. Where `live` (bool) is given, only live rows can end.
  RowEnds classify(const at::Tensor& token, const at::Tensor& sequence, int64_t generated, const at::Tensor& live = {}) const {
    auto only_live = [&](const at::Tensor& t) { return live.defined() ? live.logical_and(t) : t; };
    RowEnds ends;
    ends.eos = only_live(has_eos() ? at::isin(token, eos_) : at::zeros_like(token, at::kBool));
    ends.matched = stops_.empty() ? at::full_like(token, -1) : stops_.match(sequence.narrow(-1, prompt_length_, generated));
    if (!stop_strings_.empty()) {  // numbered after the stop sequences
      auto string_hit = stop_strings_.match(sequence.narrow(-1, 0, prompt_length_ + generated));
      ends.matched = at::where(ends.matched.ge(0).logical_or(string_hit.lt(0)), ends.matched, string_hit + stops_.size());
    }
    ends.stop = only_live(ends.eos.logical_not()).logical_and(ends.matched >= 0);
    ends.ended = ends.eos.logical_or(ends.stop);
    return ends;
  }

 private:
  StopSequenceMatcher stops_;
  StopStringMatcher stop_strings_;
  at::Tensor eos_;  // [E] int64
  int64_t prompt_length_;

  bool has_eos() const { return eos_.numel() > 0; }
};

}  // namespace lmdecode::detail
