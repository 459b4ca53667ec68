#pragma once
// CheckpointWeights: the tensors of a checkpoint by name, handed to a model's constructor, which
// takes each weight with the shape its config implies (an error names the tensor and both shapes).
// Loading a checkpoint folder is models/checkpoint.hpp's.

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "lmdecode/error.hpp"
#include "lmdecode/io/safetensors.hpp"

namespace lmdecode {

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

}  // namespace lmdecode
