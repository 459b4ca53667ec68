#pragma once
// The operators one decoding step dispatches: the OpCounter difference between generate() runs of
// different lengths (min_new_tokens = max_new_tokens, so none ends early), per extra step.

#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "lmdecode/lmdecode.hpp"
#include "lmdecode/op_counter.hpp"

namespace lmdecode_test {

/// Counts of runs with 4, 8 and 12 new tokens (the decoder generate() picks for `config`):
/// [8] - [4] and [12] - [8] are each 4 steps' worth.
template <class Model>
std::vector<lmdecode::OpCounts> counts_by_length(Model& model, lmdecode::GenerationConfig config,
                                                 const std::vector<lmdecode::TokenIds>& prompts,
                                                 const lmdecode::StepCallback& on_step = {}) {
  auto run = [&](int64_t new_tokens) {
    config.max_new_tokens = config.min_new_tokens = new_tokens;
    lmdecode::generate(model, prompts, config, on_step);
  };
  run(12);  // warm-up: first calls may dispatch extra operators
  lmdecode::OpCounter counter;
  std::vector<lmdecode::OpCounts> out;
  for (int64_t n : {4, 8, 12}) {
    run(n);
    out.push_back(counter.take());
  }
  return out;
}

/// The operators among `counts`' calls (ours and nested ones) that, on a GPU, read device memory on
/// the host and so make it wait for the device: item() and the scalar conversions, and the operators
/// whose output size depends on the data. Their names show on the CPU too.
inline std::vector<std::string> device_waits(const lmdecode::OpCounts& counts) {
  static const std::set<std::string> waiting = {
      "aten::item",        "aten::_local_scalar_dense", "aten::Int",     "aten::Bool",
      "aten::Float",       "aten::ScalarImplicit",      "aten::is_nonzero", "aten::equal",
      "aten::allclose",    "aten::nonzero",             "aten::masked_select", "aten::_unique2",
      "aten::unique_dim",  "aten::unique_consecutive",  "aten::_assert_async"};
  std::vector<std::string> found;
  for (const auto* names : {&counts.calls_by_name, &counts.nested_by_name})
    for (const auto& [name, n] : *names)
      if (waiting.count(name) != 0) found.push_back(name);
  return found;
}

/// "" when the steps of counts_by_length's runs are steady and GPU-friendly, else what is wrong: no
/// tensor is made without naming a device (in the whole run), the first and the last 4 steps
/// dispatch the same operators (a step whose cost grew with its index would show as more calls
/// later), none of them waits on the device (device_waits), and each step asks for host memory once
/// (`to_host`, where OpCounter counts transfers), for as many bytes late as early (a read that
/// carried the whole history would grow with the step).
inline std::string step_problems(const std::vector<lmdecode::OpCounts>& c) {
  const auto early = c[1] - c[0], late = c[2] - c[1];  // 4 steps each
  if (late.calls <= 0) return "no calls counted";
  if (!c[2].made_without_device.empty())  // the whole 12-token run, its setup included
    return fmt::format("tensors made without naming a device (on the CPU next to a GPU model): {}",
                       fmt::join(c[2].made_without_device, ", "));
  if (early.calls != late.calls || early.calls_by_name != late.calls_by_name)
    return fmt::format("the first 4 steps call other operators than the last 4 ({} vs {} calls)", early.calls, late.calls);
  if (const auto waits = device_waits(late); !waits.empty())
    return fmt::format("operators that wait on the device: {}", fmt::join(waits, ", "));
  if (lmdecode::OpCounter::kCountsTransfers && late.to_host != 4)
    return fmt::format("{} to(kCPU) calls in 4 steps, expected 4", late.to_host);
  if (early.to_host_bytes != late.to_host_bytes)
    return fmt::format("the reads of the first 4 steps copy {} bytes, of the last 4 {}: the read grows with the step",
                       early.to_host_bytes, late.to_host_bytes);
  return "";
}

/// On a GPU: "" when each step of counts_by_length's runs reads the device once and copies nothing
/// to it, else what the steps do instead.
inline std::string device_traffic_problems(const std::vector<lmdecode::OpCounts>& c) {
  const auto steps = c[2] - c[0];  // 8 steps
  if (steps.host_reads == 8 && steps.uploads == 0) return "";
  return fmt::format("8 steps read the device {} times and upload to it {} times ({} calls a step)", steps.host_reads,
                     steps.uploads, steps.calls / 8.0);
}

}  // namespace lmdecode_test
