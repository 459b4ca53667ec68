#pragma once
// The command-line programs' entry points. The programs are compiled as one unit
// (examples/CMakeLists.txt): each of them alone compiled the library, the tokenizer and CLI11 again,
// about four times the work of one (generate, chat, tokenize and serve: 523 s of compiling under the
// sanitizers, 197 s as one unit with perplexity, 2026-12-07). Each program's main (program_main.cpp) calls its own.

namespace lmdecode_cli {
namespace generate_program { int program_main(int argc, char** argv); }
namespace chat_program { int program_main(int argc, char** argv); }
namespace tokenize_program { int program_main(int argc, char** argv); }
namespace perplexity_program { int program_main(int argc, char** argv); }
namespace serve_program { int program_main(int argc, char** argv); }
}  // namespace lmdecode_cli
