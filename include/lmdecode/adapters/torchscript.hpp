#pragma once
// A TorchScript module exported from Python, decoded through HfStyleModel. Its forward must be
//     forward(input_ids, past_key_values: List[Tuple[Tensor, Tensor]], attention_mask, position_ids)
//         -> Tuple[Tensor, List[Tuple[Tensor, Tensor]]]     (a tuple of tuples is accepted too)
// and receives an empty list on the first call. Not part of lmdecode.hpp: <torch/script.h> is heavy.
//
// Example:
//   auto model = lmdecode::load_torchscript("model.pt");
//   lmdecode::BeamSearchDecoder decoder(model, config);

#include <torch/script.h>

#include <optional>
#include <string>

#include "lmdecode/adapters/hf_style_model.hpp"
#include "lmdecode/detail/device_check.hpp"

namespace lmdecode {

namespace detail {

inline HfStylePast past_from_ivalue(const c10::IValue& value) {
  std::vector<c10::IValue> layers;
  if (value.isList()) {
    for (const auto& v : value.toListRef()) layers.push_back(v);
  } else if (value.isTuple()) {
    for (const auto& v : value.toTupleRef().elements()) layers.push_back(v);
  } else {
    throw model_error(fmt::format("past_key_values must be a list or tuple of (key, value) pairs, got {}",
                                  value.tagKind()));
  }
  HfStylePast past;
  for (size_t l = 0; l < layers.size(); ++l) {
    const auto& pair = layers[l];
    check<model_error>(pair.isTuple() && pair.toTupleRef().elements().size() == 2,
                       "past_key_values layer {} is not a (key, value) pair", l);
    const auto& kv = pair.toTupleRef().elements();
    check<model_error>(kv[0].isTensor() && kv[1].isTensor(), "past_key_values layer {} holds non-tensors", l);
    past.emplace_back(kv[0].toTensor(), kv[1].toTensor());
  }
  return past;
}

inline c10::IValue past_to_ivalue(const HfStylePast& past) {
  c10::impl::GenericList list(c10::TupleType::create({c10::TensorType::get(), c10::TensorType::get()}));
  for (const auto& [k, v] : past) list.push_back(c10::ivalue::Tuple::create({k, v}));
  return list;
}

}  // namespace detail

/// Wraps a loaded TorchScript module. Its device is that of its first parameter, else of its first
/// buffer, else of its first plain tensor attribute (weights kept as `self.w = tensor` in Python),
/// submodules included; CPU if it holds no tensor. `vocab_size`: as in HfStyleModel's constructor.
inline HfStyleModel from_torchscript(torch::jit::Module module, std::optional<int64_t> vocab_size = std::nullopt) {
  module.eval();
  auto device = detail::first_device(module.parameters());
  if (!device) device = detail::first_device(module.buffers());
  if (!device) {
    for (const auto& attribute : module.attributes()) {
      if (!attribute.isTensor()) continue;
      device = attribute.toTensor().device();
      break;
    }
  }
  auto shared = std::make_shared<torch::jit::Module>(std::move(module));
  return HfStyleModel(
      [shared](const at::Tensor& ids, const HfStylePast& past, const at::Tensor& mask, const at::Tensor& pos) {
        auto out = shared->forward({ids, detail::past_to_ivalue(past), mask, pos});
        detail::check<model_error>(out.isTuple() && out.toTupleRef().elements().size() == 2,
                                   "the TorchScript module must return (logits, past_key_values), got {}", out.tagKind());
        const auto& parts = out.toTupleRef().elements();
        detail::check<model_error>(parts[0].isTensor(), "the TorchScript module's logits are not a tensor");
        return std::make_pair(parts[0].toTensor(), detail::past_from_ivalue(parts[1]));
      },
      device.value_or(at::kCPU), vocab_size);
}

/// Loads a TorchScript file onto `device` and wraps it.
inline HfStyleModel load_torchscript(const std::string& path, at::Device device = at::kCPU,
                                     std::optional<int64_t> vocab_size = std::nullopt) {
  detail::check_device_available(device);
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, device);
  } catch (const c10::Error& e) {
    throw file_error(fmt::format("cannot load TorchScript file {}: {}", path, e.what_without_backtrace()));
  }
  return from_torchscript(std::move(module), vocab_size);
}

}  // namespace lmdecode
