#pragma once

#include <filesystem>

namespace lmdecode_test {

/// tests/data, set by CMake so the tests run from any working directory.
inline std::filesystem::path data_dir() { return LMDECODE_TEST_DATA_DIR; }
inline std::filesystem::path reference_dir() { return data_dir() / "hf-reference"; }

}  // namespace lmdecode_test
