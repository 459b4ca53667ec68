#pragma once
// A checkpoint's chat template: the Jinja `chat_template` of its tokenizer_config.json (or its
// chat_template.jinja), rendered as transformers' apply_chat_template renders it, by an
// interpreter of our own for the part of Jinja that chat templates use (lmdecode/jinja/). The
// template sees `messages`, `tools`, `documents`, `add_generation_prompt`, the special tokens
// (bos_token, eos_token, ...) and any extra variables (enable_thinking, ...). A construct the
// interpreter does not support is an invalid_argument naming it and its line and column, when the
// template is read; what a template raises (raise_exception) or a fault while rendering is one too.
// ChatML is the fallback for a checkpoint without a template.
//
// Example:
//   auto chat = lmdecode::ChatTemplate::for_model("Qwen3-0.6B");   // ChatML if it has none
//   auto prompt = chat.render({{"user", "Hi!"}});   // or a JSON array of messages and ChatTemplateOptions
//   auto ids = tokenizer.encode(prompt);  // no add_special_tokens: the template wrote BOS if any

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmdecode/detail/json_fields.hpp"
#include "lmdecode/error.hpp"
#include "lmdecode/jinja/interpreter.hpp"
#include "lmdecode/jinja/lexer.hpp"
#include "lmdecode/jinja/parser.hpp"

namespace lmdecode {

struct ChatMessage {
  std::string role;  ///< "system", "user", "assistant", "tool"
  std::string content;
};

struct ChatTemplateOptions {
  /// Ends the prompt with the header of an assistant turn (transformers' default is false; ours is
  /// true, since a prompt is rendered to be generated from).
  bool add_generation_prompt = true;
  nlohmann::ordered_json tools = nullptr;      ///< a list of JSON schemas, or null (the template sees none)
  nlohmann::ordered_json documents = nullptr;  ///< a list of {"title", "text"}, or null
  /// More template variables (enable_thinking, date_string, ...); they override the special tokens.
  nlohmann::ordered_json variables = nlohmann::ordered_json::object();
  /// For a checkpoint with several named templates: the one to use (default: "tool_use" when tools
  /// are given and it exists, else "default").
  std::string template_name;
};

/// A chat as programs pass it around: its messages, and the options that come with them.
struct ChatRequest {
  nlohmann::ordered_json messages;
  ChatTemplateOptions options;
};

/// A chat written as JSON: an array of {"role", "content", ...} messages, or an object with
/// "messages" and optionally "tools", "documents", "add_generation_prompt" (a bool; else
/// `add_generation_prompt`) and any other key as a template variable (enable_thinking, ...).
inline ChatRequest chat_request_from_json(const nlohmann::ordered_json& chat, bool add_generation_prompt = true) {
  ChatRequest request;
  request.options.add_generation_prompt = add_generation_prompt;
  if (chat.is_array()) {
    request.messages = chat;
    return request;
  }
  detail::check(chat.is_object() && chat.contains("messages"), "a chat is a JSON array of messages or an object with \"messages\"");
  for (const auto& [key, value] : chat.items()) {
    if (key == "messages") request.messages = value;
    else if (key == "tools") request.options.tools = value;
    else if (key == "documents") request.options.documents = value;
    else if (key == "add_generation_prompt" && value.is_boolean()) request.options.add_generation_prompt = value.get<bool>();
    else request.options.variables[key] = value;
  }
  return request;
}

class ChatTemplate {
 public:
  /// `source` is the Jinja text; `special_tokens` an object of bos_token, eos_token, ... (strings);
  /// `origin` names the template in errors.
  explicit ChatTemplate(const std::string& source, nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object(),
                        std::string origin = "the chat template")
      : special_tokens_(std::move(special_tokens)), origin_(std::move(origin)) {
    templates_.emplace_back("default", compile(source, origin_));
  }

  /// ChatML, for checkpoints that bring no template: each turn is "<|im_start|>role\ncontent<|im_end|>\n",
  /// and the generation prompt "<|im_start|>assistant\n" (the format of Qwen's chat checkpoints).
  static ChatTemplate chatml() {
    return ChatTemplate(
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        nlohmann::ordered_json::object(), "the ChatML template");
  }

  /// The template `path` names, whatever its file name: a folder's (for_model: ChatML where it has
  /// none); a file holding a JSON object is a tokenizer_config.json (its "chat_template": a string,
  /// or a list of {"name", "template"}; a chat_template.jinja beside it wins, as in transformers 5);
  /// any other file is a Jinja template (special tokens from the tokenizer_config.json beside it).
  /// A config without a template is an invalid_argument.
  static ChatTemplate from_file(const std::filesystem::path& path) {
    if (std::filesystem::is_directory(path)) return for_model(path);
    const std::string text = read_text(path);
    const auto beside = path.parent_path();
    if (!is_json_object(text))
      return ChatTemplate(text, special_tokens_of(beside / "tokenizer_config.json"), path.string());
    if (auto jinja = jinja_beside(path)) return std::move(*jinja);
    auto found = from_config(path, detail::parse_json(text, path.string()));
    if (!found) throw invalid_argument(fmt::format("{} has no chat_template, and no chat_template.jinja is beside it", path.string()));
    return std::move(*found);
  }

  /// The template of a model folder (chat_template.jinja, else tokenizer_config.json's), else ChatML.
  static ChatTemplate for_model(const std::filesystem::path& model_dir) {
    const auto config_path = model_dir / "tokenizer_config.json";
    if (auto jinja = jinja_beside(config_path)) return std::move(*jinja);
    if (!std::filesystem::exists(config_path)) return chatml();
    auto found = from_config(config_path, detail::read_json_file(config_path));
    return found ? std::move(*found) : chatml();
  }

  /// The prompt for `messages` (a JSON array of {"role", "content", ...} objects, tool calls and
  /// all); `options` has no default so that render({{"user", "hi"}}) means the ChatMessage overload.
  std::string render(const nlohmann::ordered_json& messages, const ChatTemplateOptions& options) const {
    detail::check(messages.is_array(), "the messages of a chat are a JSON array, not {}", messages.type_name());
    // transformers' apply_chat_template fails on an empty conversation (an IndexError) before rendering.
    detail::check(!messages.empty(), "a chat needs at least one message");
    detail::check(options.variables.is_object(), "chat template variables are a JSON object, not {}", options.variables.type_name());
    jinja::Dict variables;
    const auto add = [&](const std::string& key, const nlohmann::ordered_json& value) {
      variables.items.emplace_back(key, to_value(value));
    };
    add("messages", messages);
    add("tools", options.tools);
    add("documents", options.documents);
    add("add_generation_prompt", options.add_generation_prompt);
    for (const auto& [key, value] : special_tokens_.items())
      if (!options.variables.contains(key)) add(key, value);
    for (const auto& [key, value] : options.variables.items()) add(key, value);
    const auto& [name, body] = choose(options);
    try {
      return jinja::Interpreter(std::move(variables)).render(*body);
    } catch (const jinja::LocatedError& e) {
      throw invalid_argument(fmt::format("{}{}, line {}, column {}: {}", origin_, name == "default" ? "" : " '" + name + "'",
                                         e.where.line, e.where.column, e.what()));
    }
  }

  /// Where the template came from ("<path> chat_template", "the ChatML template"), for messages.
  const std::string& origin() const { return origin_; }

  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const {
    auto array = nlohmann::ordered_json::array();
    for (const auto& m : messages) array.push_back({{"role", m.role}, {"content", m.content}});
    ChatTemplateOptions options;
    options.add_generation_prompt = add_generation_prompt;
    return render(array, options);
  }

 private:
  using Compiled = std::shared_ptr<const jinja::Body>;
  /// Real templates hold tens of KiB; a bound keeps a hostile one from costing gigabytes to parse.
  static constexpr size_t kMaxTemplateBytes = size_t{1} << 20;
  ChatTemplate(std::vector<std::pair<std::string, Compiled>> templates, nlohmann::ordered_json special_tokens, std::string origin)
      : templates_(std::move(templates)), special_tokens_(std::move(special_tokens)), origin_(std::move(origin)) {}

  static Compiled compile(const std::string& source, const std::string& origin) {
    detail::check(source.size() <= kMaxTemplateBytes, "{} is {} bytes, over the {} MiB a chat template may hold", origin,
                  source.size(), kMaxTemplateBytes >> 20);
    try {
      return std::make_shared<const jinja::Body>(jinja::Parser(jinja::Lexer(source).pieces()).parse());
    } catch (const jinja::SyntaxError& e) {
      throw invalid_argument(fmt::format("{}, line {}, column {}: {}", origin, e.where.line, e.where.column, e.what()));
    }
  }

  static std::string read_text(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw file_error(fmt::format("cannot open {}", path.string()));
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

  /// bos_token, eos_token, ... of a tokenizer_config.json (strings or {"content": ...}), as
  /// transformers' special_tokens_map passes them; special_tokens_map.json fills what it lacks.
  static nlohmann::ordered_json special_tokens_of(const std::filesystem::path& config_path) {
    auto tokens = nlohmann::ordered_json::object();
    for (const auto& file : {config_path, config_path.parent_path() / "special_tokens_map.json"}) {
      if (!std::filesystem::exists(file)) continue;
      const auto config = detail::read_json_file(file);
      for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
        if (tokens.contains(key) || !config.is_object() || !config.contains(key)) continue;
        const auto& value = config[key];
        if (value.is_string()) tokens[key] = value;
        else if (value.is_object() && value.contains("content") && value["content"].is_string()) tokens[key] = value["content"];
      }
    }
    return tokens;
  }

  /// Whether a file's `text` is a JSON object (a tokenizer_config.json) rather than a template.
  static bool is_json_object(const std::string& text) {
    const size_t first = text.find_first_not_of(" \t\r\n");
    return first != std::string::npos && text[first] == '{' && nlohmann::json::accept(text);
  }

  /// The chat_template.jinja beside `config_path` (with that config's special tokens), if there is one.
  static std::optional<ChatTemplate> jinja_beside(const std::filesystem::path& config_path) {
    const auto jinja_path = config_path.parent_path() / "chat_template.jinja";
    if (!std::filesystem::exists(jinja_path)) return std::nullopt;
    return ChatTemplate(read_text(jinja_path), special_tokens_of(config_path), jinja_path.string());
  }

  /// The template of a tokenizer_config.json's "chat_template", if it has one.
  static std::optional<ChatTemplate> from_config(const std::filesystem::path& config_path, const nlohmann::json& config) {
    if (!config.is_object() || !config.contains("chat_template") || config["chat_template"].is_null()) return std::nullopt;
    const auto special = special_tokens_of(config_path);
    const auto& source = config["chat_template"];
    const std::string origin = config_path.string() + " chat_template";
    if (source.is_string()) return ChatTemplate(source.get<std::string>(), special, origin);
    detail::check<file_error>(source.is_array(), "{} is neither a string nor a list of named templates", origin);
    std::vector<std::pair<std::string, Compiled>> named;
    for (const auto& entry : source) {
      detail::check<file_error>(entry.is_object() && entry.contains("name") && entry["name"].is_string() && entry.contains("template") &&
                                    entry["template"].is_string(),
                                "{}: each entry needs a string name and a string template", origin);
      const auto name = entry["name"].get<std::string>();
      named.emplace_back(name, compile(entry["template"].get<std::string>(), origin + " '" + name + "'"));
    }
    detail::check<file_error>(!named.empty(), "{} is an empty list", origin);
    return ChatTemplate(std::move(named), special, origin);
  }

  const std::pair<std::string, Compiled>& choose(const ChatTemplateOptions& options) const {
    const auto named = [&](const std::string& name) -> const std::pair<std::string, Compiled>* {
      for (const auto& t : templates_)
        if (t.first == name) return &t;
      return nullptr;
    };
    if (!options.template_name.empty()) {
      if (const auto* t = named(options.template_name)) return *t;
      throw invalid_argument(fmt::format("{} has no template named '{}'", origin_, options.template_name));
    }
    if (!options.tools.is_null())
      if (const auto* t = named("tool_use")) return *t;
    if (const auto* t = named("default")) return *t;
    std::vector<std::string> names;
    for (const auto& t : templates_) names.push_back(t.first);
    throw invalid_argument(fmt::format("{} has several templates and none named default: pick one of {}", origin_, names));
  }

  static jinja::Value to_value(const nlohmann::ordered_json& json, size_t depth = 0) {
    using jinja::Value;
    detail::check(depth < 256, "a chat value nests deeper than 256 levels");
    switch (json.type()) {
      case nlohmann::json::value_t::null: return nullptr;
      case nlohmann::json::value_t::boolean: return json.get<bool>();
      case nlohmann::json::value_t::number_integer: return json.get<int64_t>();
      case nlohmann::json::value_t::number_unsigned:
        detail::check(json.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX), "a chat value {} does not fit 64 bits", json.dump());
        return static_cast<int64_t>(json.get<uint64_t>());
      case nlohmann::json::value_t::number_float: return json.get<double>();
      case nlohmann::json::value_t::string: return json.get<std::string>();
      case nlohmann::json::value_t::array: {
        jinja::List list;
        for (const auto& item : json) list.items.push_back(to_value(item, depth + 1));
        return list;
      }
      case nlohmann::json::value_t::object: {
        jinja::Dict dict;
        for (const auto& [key, value] : json.items()) dict.items.emplace_back(key, to_value(value, depth + 1));
        return dict;
      }
      default: throw invalid_argument("a chat value of an unsupported JSON type (binary)");
    }
  }

  std::vector<std::pair<std::string, Compiled>> templates_;
  nlohmann::ordered_json special_tokens_;
  std::string origin_;
};

}  // namespace lmdecode
