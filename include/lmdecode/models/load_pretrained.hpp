#pragma once
// load_pretrained(): a Hugging Face checkpoint folder (config.json + safetensors) to a model object.
//
// Example:
//   auto model = lmdecode::load_pretrained("Qwen2.5-0.5B-Instruct", {at::kCUDA, at::kBFloat16});
//   auto config = lmdecode::load_checkpoint_generation_config("Qwen2.5-0.5B-Instruct", model->config());
//   lmdecode::GreedyDecoder decoder(*model, config);

#include <filesystem>
#include <memory>

#include <torch/version.h>

#include "lmdecode/io/model_config.hpp"
#include "lmdecode/io/safetensors.hpp"
#include "lmdecode/models/gpt2.hpp"
#include "lmdecode/models/qwen2.hpp"

namespace lmdecode {

/// Architectures load_pretrained() implements, as named in config.json's "architectures".
inline constexpr const char* kSupportedArchitectures = "Qwen2ForCausalLM, LlamaForCausalLM, GPT2LMHeadModel";

/// Where the model lives and in which floating-point dtype its weights and activations run.
struct ModelOptions {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
};

inline std::unique_ptr<PretrainedModel> load_pretrained(const std::filesystem::path& folder, ModelOptions options = {}) {
  detail::check(at::isFloatingType(options.dtype), "model dtype must be floating point (got {})",
                c10::toString(options.dtype));
#if TORCH_VERSION_MAJOR < 2
  detail::check(!(options.dtype == at::kHalf && options.device.is_cpu()),
                "float16 models need CUDA with libtorch {}.{} (it has no float16 matmul on the CPU): use bfloat16 "
                "or float32 there",
                TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR);
#endif
  detail::check<file_error>(std::filesystem::is_directory(folder), "model folder {} does not exist or is not a folder",
                            folder.string());
  auto config = load_model_config(folder / "config.json");
  const auto& arch = config.architecture;
  const bool qwen2 = arch == "Qwen2ForCausalLM" || arch == "LlamaForCausalLM" ||
                     (arch.empty() && (config.model_type == "qwen2" || config.model_type == "llama"));
  const bool gpt2 = arch == "GPT2LMHeadModel" || (arch.empty() && config.model_type == "gpt2");
  if (!qwen2 && !gpt2)
    throw invalid_argument(fmt::format("{}: architecture \"{}\" (model_type \"{}\") is not supported; supported: {}",
                                       (folder / "config.json").string(), arch, config.model_type,
                                       kSupportedArchitectures));
  detail::WeightStore weights(load_safetensors_checkpoint(folder, {options.device, options.dtype}), folder.string());
  if (qwen2) return std::make_unique<Qwen2Model>(std::move(config), weights, options.device, options.dtype);
  return std::make_unique<Gpt2Model>(std::move(config), weights, options.device, options.dtype);
}

}  // namespace lmdecode
