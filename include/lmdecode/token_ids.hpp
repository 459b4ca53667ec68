#pragma once
// TokenIds: the token ids of one sequence (a prompt, a generated continuation, an encoded text).

#include <cstdint>
#include <vector>

namespace lmdecode {

using TokenIds = std::vector<int64_t>;

}  // namespace lmdecode
