#pragma once
// WeightFormat: how a model keeps its weight matrices (linear layers, embeddings, output layer),
// apart from the dtype its arithmetic runs in. A float32 decode step on the CPU reads its weights
// at the memory's speed, so fewer bytes per weight is the only way to a faster step there.

#include <optional>
#include <string_view>

namespace lmdecode {

enum class WeightFormat {
  model_dtype,  ///< the matrices in the model's dtype, like everything else
  bfloat16,     ///< float32 models on the CPU: matrices in bfloat16, widened exactly where they are used
  q8_0,         ///< float32 models on the CPU: llama.cpp's Q8_0 (int8 blocks of 32, a scale each), quantized at load
};

/// The name the command line and JSON give a format: "f32" (the model's dtype), "bf16" or "q8_0".
inline std::string_view weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::bfloat16:
      return "bf16";
    case WeightFormat::q8_0:
      return "q8_0";
    case WeightFormat::model_dtype:
      break;
  }
  return "f32";
}

/// The format a name gives, or none.
inline std::optional<WeightFormat> parse_weight_format(std::string_view name) {
  if (name == "f32") return WeightFormat::model_dtype;
  if (name == "bf16") return WeightFormat::bfloat16;
  if (name == "q8_0") return WeightFormat::q8_0;
  return std::nullopt;
}

}  // namespace lmdecode
