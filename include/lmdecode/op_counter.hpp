#pragma once
// OpCounter: counts the ATen operators dispatched on this thread while it lives, and the copies
// between host and device memory among them. On a GPU each operator that computes is a kernel
// launch, whose host-side cost bounds a small model's step, and each device-to-host read is a sync
// that stops the host from queueing ahead; so these counts say where a decoding step's time goes.
//
// Example:
//   lmdecode::OpCounter counter;
//   decoder.generate(prompts);
//   auto counts = counter.take();  // counts.calls, counts.host_reads, counts.to_host, counts.calls_by_name, ...
//
// It uses a global RecordFunction callback, which slows every operator down while it is installed:
// a diagnostic, not for production loops. One OpCounter may exist at a time.
//
// Copies are told apart by their arguments' devices, read through RecordFunction::inputs(), which
// is only safe in builds with NDEBUG (as libtorch is built): without it the header's debug check
// reads a flag that the release-built libtorch never sets. So host_reads, uploads, to_host(_bytes) and
// made_without_device are counted where kCountsTransfers is true (release builds) and stay 0 elsewhere.

#include <ATen/core/function_schema.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "lmdecode/error.hpp"

namespace lmdecode {

struct OpCounts {
  int64_t calls = 0;       // operators called by code outside ATen (ours, the model's)
  int64_t all_calls = 0;   // the same plus the operators those call in turn
  int64_t host_reads = 0;  // copies from device memory into host memory, item() of a device tensor (*)
  int64_t uploads = 0;     // copies from host memory into device memory (*)
  int64_t to_host = 0;     // `to(kCPU)` calls from outside ATen, whatever device the tensor is on (*):
                           // on a GPU each reads the device; on the CPU they show where a GPU run would
  int64_t to_host_bytes = 0;  // the bytes those `to(kCPU)` calls copy (*)
  std::map<std::string, int64_t> calls_by_name;   // the `calls`, by operator name
  std::map<std::string, int64_t> nested_by_name;  // the other calls, by operator name
  // Factory `calls` (arange, zeros, full, ...: no tensor argument) that name no device, by operator
  // name. The tensor lands on the CPU whatever device the model is on: next to a CUDA model that is
  // an error or a copy, while a CPU run cannot tell (*).
  std::map<std::string, int64_t> made_without_device;
  // (*) counted only where OpCounter::kCountsTransfers (builds with NDEBUG); 0 elsewhere

  /// The counts of what happened between `earlier` and this.
  OpCounts operator-(const OpCounts& earlier) const {
    OpCounts d{calls - earlier.calls, all_calls - earlier.all_calls, host_reads - earlier.host_reads,
               uploads - earlier.uploads, to_host - earlier.to_host, to_host_bytes - earlier.to_host_bytes, {}, {}, {}};
    auto subtract = [](const auto& later, const auto& before, auto& out) {
      for (const auto& [name, n] : later) {
        auto it = before.find(name);
        if (const int64_t diff = n - (it == before.end() ? 0 : it->second); diff != 0) out[name] = diff;
      }
    };
    subtract(calls_by_name, earlier.calls_by_name, d.calls_by_name);
    subtract(nested_by_name, earlier.nested_by_name, d.nested_by_name);
    subtract(made_without_device, earlier.made_without_device, d.made_without_device);
    return d;
  }
};

class OpCounter {
 public:
#ifdef NDEBUG
  static constexpr bool kCountsTransfers = true;
#else
  static constexpr bool kCountsTransfers = false;
#endif

  OpCounter() {
    detail::check(active_ == nullptr, "only one OpCounter may exist at a time");
    active_ = this;
    owner_ = std::this_thread::get_id();
    handle_ = at::addGlobalCallback(
        at::RecordFunctionCallback(&on_start, &on_end).needsInputs(kCountsTransfers).scopes({at::RecordScope::FUNCTION}));
  }
  ~OpCounter() {
    at::removeCallback(handle_);
    active_ = nullptr;
  }
  OpCounter(const OpCounter&) = delete;
  OpCounter& operator=(const OpCounter&) = delete;

  /// What was counted so far.
  const OpCounts& counts() const { return counts_; }
  /// What was counted so far; counting starts again from zero.
  OpCounts take() { return std::exchange(counts_, OpCounts{}); }

 private:
  struct Counted : at::ObserverContext {};

  static bool on_device(const c10::IValue& v) { return v.isTensor() && !v.toTensor().device().is_cpu(); }

  /// Where `fn`'s operator takes its `device` argument (-1: it takes none), read from its schema once.
  int64_t device_argument(const at::RecordFunction& fn) {
    const auto op = fn.operator_name();
    if (!op) return -1;
    const std::string key = op->name + "." + op->overload_name;
    auto it = device_argument_.find(key);
    if (it == device_argument_.end()) {
      int64_t index = -1;
      if (const auto schema = fn.operator_schema()) {
        const auto& args = schema->arguments();
        for (size_t i = 0; i < args.size(); ++i)
          if (args[i].name() == "device") index = static_cast<int64_t>(i);
      }
      it = device_argument_.emplace(key, index).first;
    }
    return it->second;
  }

  /// A factory call (no tensor argument) whose device argument is None.
  bool makes_without_device(const at::RecordFunction& fn, c10::ArrayRef<const c10::IValue> inputs) {
    const bool has_tensor = std::any_of(inputs.begin(), inputs.end(), [](const c10::IValue& v) {
      return v.isTensor() || v.isTensorList() || v.isOptionalTensorList();
    });
    if (has_tensor) return false;
    const int64_t device = device_argument(fn);
    return device >= 0 && device < static_cast<int64_t>(inputs.size()) && inputs[device].isNone();
  }

  static void count_transfers(const std::string& name, c10::ArrayRef<const c10::IValue> inputs, bool outermost,
                              OpCounts& counts) {
    const bool copy = name == "aten::copy_" && inputs.size() >= 2 && inputs[0].isTensor() && inputs[1].isTensor();  // (dst, src)
    if ((copy && !on_device(inputs[0]) && on_device(inputs[1])) ||
        (name == "aten::_local_scalar_dense" && !inputs.empty() && on_device(inputs[0])))
      ++counts.host_reads;
    if (copy && on_device(inputs[0]) && !on_device(inputs[1]) && inputs[1].toTensor().numel() > 0) ++counts.uploads;
    auto host_device = [](const c10::IValue& v) { return v.isDevice() && v.toDevice().is_cpu(); };
    if (outermost && name == "aten::to" && !inputs.empty() && inputs[0].isTensor() &&
        std::any_of(inputs.begin(), inputs.end(), host_device)) {
      ++counts.to_host;
      counts.to_host_bytes += static_cast<int64_t>(inputs[0].toTensor().nbytes());
    }
  }

  static std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
    OpCounter* self = active_;
    if (self == nullptr || std::this_thread::get_id() != self->owner_) return nullptr;  // other threads' work
    const std::string name = fn.name();
    if constexpr (kCountsTransfers) {
      const auto inputs = fn.inputs();
      count_transfers(name, inputs, self->depth_ == 0, self->counts_);
      if (self->depth_ == 0 && self->makes_without_device(fn, inputs)) ++self->counts_.made_without_device[name];
    }
    ++self->counts_.all_calls;
    if (self->depth_++ == 0) {
      ++self->counts_.calls;
      ++self->counts_.calls_by_name[name];
    } else {
      ++self->counts_.nested_by_name[name];
    }
    return std::make_unique<Counted>();  // marks the calls whose end must lower the depth
  }

  static void on_end(const at::RecordFunction&, at::ObserverContext* counted) {
    if (counted != nullptr && active_ != nullptr) --active_->depth_;
  }

  static inline OpCounter* active_ = nullptr;
  std::map<std::string, int64_t> device_argument_;  // by operator and overload name
  std::thread::id owner_;
  int64_t depth_ = 0;
  OpCounts counts_;
  at::CallbackHandle handle_ = 0;
};

}  // namespace lmdecode
