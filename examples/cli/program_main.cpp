// The main of one command-line program: LMDECODE_PROGRAM names its namespace (examples/CMakeLists.txt).
#include "programs.hpp"

int main(int argc, char** argv) { return lmdecode_cli::LMDECODE_PROGRAM::program_main(argc, argv); }
