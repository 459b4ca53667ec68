#pragma once
// A model asked onto a GPU that this process does not have is the caller's error: said so here, by
// device name, instead of a libtorch message about how it was built, or a CUDA error later on.

#include <ATen/Context.h>
#include <c10/core/Device.h>

#include "lmdecode/error.hpp"

namespace lmdecode::detail {

inline void check_device_available(at::Device device) {
  if (!device.is_cuda()) return;
  check(at::hasCUDA(), "device {}: this libtorch has no CUDA, or it sees no GPU", device.str());
  const auto gpus = static_cast<int64_t>(at::getNumGPUs());
  check(!device.has_index() || device.index() < gpus, "device {}: there is no such GPU (libtorch sees {})",
        device.str(), gpus);
}

}  // namespace lmdecode::detail
