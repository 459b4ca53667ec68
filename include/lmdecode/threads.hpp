#pragma once
// set_threads: the CPU threads a decode may use. libtorch's intra-op threads do not bound the BLAS's
// own: a pthread OpenBLAS (what Debian's libtorch runs with) keeps one thread per core for its gemv
// and GEMM whatever at::set_num_threads says, and on a machine busy with other work every handoff to
// those threads waits for a time slice (a tiny model's one-row step went from 0.35 to 36 ms).

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <thread>

#include "lmdecode/error.hpp"

namespace lmdecode {

/// The most threads set_threads takes: the machine's logical cores. More only time-slice the same
/// cores (a thousand threads on two cores made a 4-token run wait without end on OpenBLAS's handoffs).
inline int max_threads() {
  const unsigned cores = std::thread::hardware_concurrency();
  return cores == 0 ? 1 : static_cast<int>(cores);
}

/// Sets libtorch's intra-op threads to `threads` and, where the process runs OpenBLAS (found at run
/// time: libtorch does not link it by name), OpenBLAS's threads too.
inline void set_threads(int threads) {
  detail::check(threads >= 1, "threads must be >= 1 (got {})", threads);
  detail::check(threads <= max_threads(), "threads must be at most the {} cores of this machine (got {})", max_threads(),
                threads);
  at::set_num_threads(threads);
  using SetBlasThreads = void (*)(int);
  if (auto set_blas_threads = reinterpret_cast<SetBlasThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    set_blas_threads(threads);
}

}  // namespace lmdecode
