#pragma once
// The check every cache's reorder(row_index) makes before gathering rows.

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>

#include "lmdecode/error.hpp"

namespace lmdecode::detail {

/// `row_index` must be 1-D int64 on `device` (when the cache holds tensors) and name rows in
/// [0, rows); the range is read only from an index on the CPU (on a GPU it would be a sync).
inline void check_row_index(const char* cache, const at::Tensor& row_index, int64_t rows,
                            std::optional<at::Device> device) {
  check(row_index.dim() == 1 && row_index.scalar_type() == at::kLong,
        "{}::reorder needs a 1-D int64 index (got {}-D {})", cache, row_index.dim(),
        c10::toString(row_index.scalar_type()));
  if (!device) return;  // an empty cache: nothing to gather
  check(row_index.device() == *device, "{}::reorder: index on {} but the cache is on {}", cache,
        row_index.device().str(), device->str());
  if (!row_index.is_cpu()) return;
  const auto index = row_index.accessor<int64_t, 1>();  // host memory: no kernel, no sync
  for (int64_t i = 0; i < index.size(0); ++i) {
    check(index[i] >= 0 && index[i] < rows, "{}::reorder: index {} at position {} is not a row (rows: {})",
          cache, index[i], i, rows);
  }
}

}  // namespace lmdecode::detail
