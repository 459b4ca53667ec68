#pragma once
// A Hugging Face checkpoint folder (config.json, safetensors, generation_config.json) as lmdecode
// loads it: LoadOptions (where and in which dtype), load_pretrained() (the model its config.json
// names, with its weights), load_checkpoint_generation_config() (its generation defaults).
// CheckpointWeights, what a model's constructor takes its weights from, is in detail/checkpoint_weights.hpp.
//
// Example:
//   auto model = lmdecode::load_pretrained("Qwen2.5-0.5B-Instruct", {at::kCUDA, at::kBFloat16});
//   auto config = lmdecode::load_checkpoint_generation_config("Qwen2.5-0.5B-Instruct", model->config());
//   lmdecode::GreedyDecoder decoder(*model, config);

#include <ATen/ATen.h>
#include <torch/version.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "lmdecode/config.hpp"
#include "lmdecode/detail/backend_errors.hpp"
#include "lmdecode/io/generation_config_file.hpp"
#include "lmdecode/io/safetensors.hpp"
#include "lmdecode/models/detail/checkpoint_weights.hpp"
#include "lmdecode/models/gpt2.hpp"
#include "lmdecode/models/model_config.hpp"
#include "lmdecode/models/rotary_decoder.hpp"
#include "lmdecode/models/weight_format.hpp"

namespace lmdecode {

/// Where a checkpoint's model lives, in which dtype (unset: float32, whatever the checkpoint stores)
/// and in which format its weight matrices (models/weight_format.hpp).
struct LoadOptions {
  at::Device device = at::kCPU;
  std::optional<at::ScalarType> dtype;
  WeightFormat weights = WeightFormat::model_dtype;
};

/// The generation defaults of a checkpoint folder: the model config's special tokens, overlaid by
/// generation_config.json where present (HF merges them the same way).
inline GenerationConfig load_checkpoint_generation_config(const std::filesystem::path& folder,
                                                          const ModelConfig& model) {
  GenerationConfig base;
  base.eos_token_ids = model.eos_token_ids;
  base.pad_token_id = model.pad_token_id;
  base.bos_token_id = model.bos_token_id;
  const auto path = folder / "generation_config.json";
  if (!std::filesystem::exists(path)) return base;
  return load_generation_config(path, base);
}

/// Throws file_error naming what is not there when `folder` is not a checkpoint folder: "no model
/// at PATH: ..." (no such folder, a file, or config.json missing).
inline void check_model_folder(const std::filesystem::path& folder) {
  const auto no_model = [&](const char* why) { return file_error(fmt::format("no model at {}: {}", folder.string(), why)); };
  if (!std::filesystem::exists(folder)) throw no_model("no such file or folder");
  if (!std::filesystem::is_directory(folder)) throw no_model("it is a file, not a checkpoint folder");
  if (!std::filesystem::exists(folder / "config.json")) throw no_model("config.json missing");
}

/// Architectures load_pretrained() implements, as config.json's "architectures" names them.
inline std::string supported_architectures() {
  std::string names;
  for (const auto& name : detail::kFamilyNames) names += (names.empty() ? "" : ", ") + std::string(name.architecture);
  return names;
}

/// The model in `folder`, on `options.device`, its weights and activations in `options.dtype` (one
/// floating-point dtype for the whole model; unset: float32, whatever the checkpoint stores), its
/// weight matrices in `options.weights` (bfloat16 ones are read as stored, without a float32 copy).
inline std::unique_ptr<PretrainedModel> load_pretrained(const std::filesystem::path& folder, LoadOptions options = {}) {
  if (!options.dtype) options.dtype = at::kFloat;
  const at::ScalarType dtype = *options.dtype;
  detail::check(at::isFloatingType(dtype), "model dtype must be floating point (got {})", c10::toString(dtype));
#if TORCH_VERSION_MAJOR < 2
  detail::check(!(dtype == at::kHalf && options.device.is_cpu()),
                "float16 models need CUDA with libtorch {}.{} (it has no float16 matmul on the CPU): use bfloat16 "
                "or float32 there",
                TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR);
#endif
  detail::check(options.weights == WeightFormat::model_dtype || (dtype == at::kFloat && options.device.is_cpu()),
                "{} weights are for a float32 model on the CPU (got {} on {}); elsewhere load the model in bfloat16 or float16",
                weight_format_name(options.weights), c10::toString(dtype), options.device.str());
  check_model_folder(folder);
  auto config = load_model_config(folder / "config.json");
  if (config.family == ModelFamily::unknown)
    throw invalid_argument(fmt::format("{}: architecture \"{}\" (model_type \"{}\") is not supported; supported: {}",
                                       (folder / "config.json").string(), config.architecture, config.model_type,
                                       supported_architectures()));
  return detail::in_our_words(fmt::format("loading {}", folder.string()), [&]() -> std::unique_ptr<PretrainedModel> {
    const auto matrix_dtype = options.weights == WeightFormat::bfloat16 ? std::optional(at::kBFloat16) : std::nullopt;
    CheckpointWeights weights(load_safetensors_checkpoint(folder, {options.device, options.dtype, matrix_dtype}), folder.string());
    if (config.family == ModelFamily::gpt2)
      return std::make_unique<Gpt2Model>(std::move(config), weights, options.device, dtype, options.weights);
    return std::make_unique<RotaryDecoderModel>(std::move(config), weights, options.device, dtype, options.weights);
  });
}

}  // namespace lmdecode
