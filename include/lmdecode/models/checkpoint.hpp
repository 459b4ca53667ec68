#pragma once
// A Hugging Face checkpoint folder as the models read it: LoadOptions (where and in which dtype),
// CheckpointWeights (its tensors by name, handed to a model's constructor) and its generation
// defaults. load_pretrained() (load_pretrained.hpp) builds the model of a folder from these.

#include <ATen/ATen.h>

#include <filesystem>
#include <optional>

#include <string>
#include <vector>

#include "lmdecode/error.hpp"
#include "lmdecode/config.hpp"
#include "lmdecode/io/generation_config_file.hpp"
#include "lmdecode/io/safetensors.hpp"
#include "lmdecode/models/model_config.hpp"

namespace lmdecode {

/// Where a checkpoint's model lives and in which dtype (unset: float32, whatever the checkpoint stores).
struct LoadOptions {
  at::Device device = at::kCPU;
  std::optional<at::ScalarType> dtype;
};

class CheckpointWeights {
 public:
  CheckpointWeights(TensorMap tensors, std::string source) : tensors_(std::move(tensors)), source_(std::move(source)) {}

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }

  /// The tensor `name`, which must have `shape`; an error names the tensor and both shapes.
  at::Tensor take(const std::string& name, std::vector<int64_t> shape) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end())
      throw file_error(fmt::format("{}: missing tensor \"{}\" (expected shape [{}])", source_, name, fmt::join(shape, ", ")));
    const auto& t = it->second;
    if (t.sizes() != at::IntArrayRef(shape))
      throw file_error(fmt::format("{}: tensor \"{}\" has shape [{}], the config implies [{}]", source_, name,
                                   fmt::join(t.sizes(), ", "), fmt::join(shape, ", ")));
    detail::check<file_error>(at::isFloatingType(t.scalar_type()), "{}: tensor \"{}\" has dtype {}, expected floating point",
                      source_, name, c10::toString(t.scalar_type()));
    return t;
  }

 private:
  TensorMap tensors_;
  std::string source_;
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

}  // namespace lmdecode
