// libFuzzer target: the GBNF reader on arbitrary bytes, and a parse of the grammar's own text by
// each grammar that compiles. Malformed input must end in lmdecode's own exceptions; a parse must
// stay within its bounds.
#include <cstdint>
#include <string_view>

#include "lmdecode/grammar/grammar.hpp"
#include "lmdecode/grammar/grammar_state.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto grammar = lmdecode::Grammar::from_gbnf(text);
    lmdecode::GrammarState::start(grammar).after_text(grammar, text).accepts();
  } catch (const lmdecode::invalid_argument&) {
  }
  return 0;
}
