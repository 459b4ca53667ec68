#include "/work/main/examples/cli/program_flags.hpp"
#include "/work/main/examples/serve/openai_server.hpp"
#define main generate_main
namespace p_generate {
#include "/work/main/examples/cli/generate.cpp"
}
#undef main
#define main chat_main
namespace p_chat {
#include "/work/main/examples/cli/chat.cpp"
}
#undef main
#define main tokenize_main
namespace p_tokenize {
#include "/work/main/examples/cli/tokenize.cpp"
}
#undef main
#define main serve_main
namespace p_serve {
#include "/work/main/examples/serve.cpp"
}
#undef main
int main(int argc, char** argv) { return p_generate::generate_main(argc, argv) + p_chat::chat_main(argc, argv) + p_tokenize::tokenize_main(argc, argv) + p_serve::serve_main(argc, argv); }
