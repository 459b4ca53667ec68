#pragma once

#include <filesystem>
#include <vector>

#include "lmdecode/token_ids.hpp"

namespace lmdecode_test {

/// tests/data, set by CMake so the tests run from any working directory.
inline std::filesystem::path data_dir() { return LMDECODE_TEST_DATA_DIR; }
inline std::filesystem::path reference_dir() { return data_dir() / "hf-reference"; }

/// Prompts for the hf-reference checkpoints (vocabulary 320) that many tests share: a 5-token
/// prompt and a shorter one that is left padded to it.
inline std::vector<lmdecode::TokenIds> prompts_5_and_1() { return {{17, 240, 5, 99, 31}, {120}}; }
inline std::vector<lmdecode::TokenIds> prompts_5_and_2() { return {{17, 240, 5, 99, 31}, {120, 4}}; }

}  // namespace lmdecode_test
