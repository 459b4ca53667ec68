// lmdecode-tokenize: a tokenizer.json (and a chat template) from the shell, to compare with any other tokenizer.
//
//   lmdecode-tokenize --tokenizer FILE                 each stdin line -> a JSON array of ids
//   lmdecode-tokenize --tokenizer FILE --json-lines    each stdin line is a JSON string (texts may hold newlines)
//   lmdecode-tokenize --tokenizer FILE --decode        each stdin line is a JSON array of ids -> a JSON string
//   lmdecode-tokenize --tokenizer FILE --time          also prints to stderr how long encoding took
//   --add-special-tokens: the post-processor's tokens around each text (Llama 2's and Gemma's BOS);
//   --skip-special-tokens: decoding leaves special tokens out.
//   lmdecode-tokenize --tokenizer FILE --chat-template tokenizer_config.json|TEMPLATE_FILE|MODEL_DIR
//       (named on stderr; a folder without a template: ChatML, as lmdecode-chat)
//       each stdin line is a chat: a JSON array of {"role", "content"} messages, or an object
//       {"messages": [...], "tools": [...], "documents": [...], "add_generation_prompt": bool, any other
//       key: a template variable such as enable_thinking} -> the rendered prompt as a JSON string
//       (generation prompt included unless the line or --no-generation-prompt says otherwise);
//       a chat the template refuses -> null, and the error on stderr.

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <lmdecode/text/chat_template.hpp>
#include <lmdecode/text/tokenizer.hpp>

namespace lmdecode_cli::tokenize_program {
namespace {

/// A line as JSON (ordered_json keeps a chat's key order, which tojson shows).
template <class Json = nlohmann::json>
Json parse_line(const std::string& line, size_t line_number) {
  try {
    return Json::parse(line);
  } catch (const nlohmann::json::parse_error&) {
    throw lmdecode::invalid_argument(fmt::format("line {} is not valid JSON", line_number));
  }
}

int render_chats(const lmdecode::ChatTemplate& chat_template, bool add_generation_prompt) {
  int status = 0;
  size_t line_number = 0;
  for (std::string line; std::getline(std::cin, line);) {
    ++line_number;
    if (line.empty()) continue;
    const auto chat = parse_line<nlohmann::ordered_json>(line, line_number);
    try {
      const auto request = lmdecode::chat_request_from_json(chat, add_generation_prompt);
      std::cout << nlohmann::json(chat_template.render(request.messages, request.options)).dump() << '\n';
    } catch (const lmdecode::invalid_argument& e) {
      std::cout << "null\n";
      std::fprintf(stderr, "line %zu: %s\n", line_number, e.what());
      status = 1;
    }
  }
  return status;
}

}  // namespace

// lmdecode-tokenize's main (program_main.cpp).
int program_main(int argc, char** argv) {
  CLI::App app{"lmdecode-tokenize: encode or decode lines with a Hugging Face tokenizer.json, or render chats", "lmdecode-tokenize"};
  std::string path, chat_template_path;
  bool json_lines = false, decode = false, timed = false, add_special = false, skip_special = false, no_generation_prompt = false;
  app.add_option("--tokenizer", path, "tokenizer.json (BPE: byte-level or SentencePiece-style)")->required();
  app.add_flag("--add-special-tokens", add_special, "Add the post-processor's special tokens (BOS) around each text");
  app.add_flag("--skip-special-tokens", skip_special, "Leave special tokens out of decoded text");
  app.add_flag("--json-lines", json_lines, "Each input line is a JSON string");
  app.add_flag("--decode", decode, "Read JSON arrays of ids, print JSON strings");
  app.add_flag("--time", timed, "Print the encoding time and throughput to stderr");
  app.add_option("--chat-template", chat_template_path,
                 "Render each stdin line, a JSON array of messages, as a prompt with this template: a Jinja file or a "
                 "tokenizer_config.json (read by content, any name), or a model folder (its template, else ChatML)");
  app.add_flag("--no-generation-prompt", no_generation_prompt, "With --chat-template: leave the assistant header out");
  CLI11_PARSE(app, argc, argv);
  try {
    const auto tokenizer = lmdecode::Tokenizer::from_file(path);
    std::ios::sync_with_stdio(false);
    if (!chat_template_path.empty()) {
      const auto chat_template = lmdecode::ChatTemplate::from_file(chat_template_path);
      std::fprintf(stderr, "[chat template: %s]\n", chat_template.origin().c_str());
      return render_chats(chat_template, !no_generation_prompt);
    }
    double seconds = 0;
    size_t bytes = 0, tokens = 0, line_number = 0;
    for (std::string line; std::getline(std::cin, line);) {
      ++line_number;
      const nlohmann::json parsed = decode || json_lines ? parse_line(line, line_number) : nlohmann::json();
      if (decode) {
        if (!parsed.is_array()) throw lmdecode::invalid_argument(fmt::format("line {} is not a JSON array of ids", line_number));
        std::cout << nlohmann::json(tokenizer.decode(parsed.get<std::vector<int64_t>>(), skip_special)).dump() << '\n';
        continue;
      }
      if (json_lines && !parsed.is_string()) throw lmdecode::invalid_argument(fmt::format("line {} is not a JSON string", line_number));
      const std::string text = json_lines ? parsed.get<std::string>() : line;
      const auto start = std::chrono::steady_clock::now();
      const auto ids = tokenizer.encode(text, add_special);
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      bytes += text.size();
      tokens += ids.size();
      std::cout << nlohmann::json(ids).dump() << '\n';
    }
    if (timed)
      std::fprintf(stderr, "encoded %zu bytes into %zu tokens in %.3f s (%.2f MB/s)\n", bytes, tokens, seconds,
                   bytes / 1e6 / (seconds > 0 ? seconds : 1e-9));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}

}  // namespace lmdecode_cli::tokenize_program
