#pragma once
// Where lmdecode calls into libtorch for a whole task (loading a checkpoint, a generation), what
// fails there is said in lmdecode's words: std::bad_alloc and c10::Error become backend_error
// naming the task, with libtorch's first line and without its C++ backtrace.

#include <c10/util/Exception.h>

#include <new>
#include <string>
#include <string_view>

#include "lmdecode/error.hpp"

namespace lmdecode::detail {

/// Runs `task`; an allocation failure or a libtorch error in it becomes a backend_error saying that
/// it happened while `doing`.
template <class Task>
auto in_our_words(std::string_view doing, Task&& task) -> decltype(task()) {
  try {
    return task();
  } catch (const std::bad_alloc&) {
    throw backend_error(fmt::format("out of memory while {}", doing));
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    throw backend_error(fmt::format("libtorch failed while {}: {}", doing, what.substr(0, what.find('\n'))));
  }
}

}  // namespace lmdecode::detail
