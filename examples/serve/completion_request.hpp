#pragma once
// An OpenAI request body (/v1/completions or /v1/chat/completions) read into what the engine runs:
// the prompt's token ids and a GenerationConfig. Defaults are the checkpoint's generation_config.json
// (as vLLM takes them); each field the request gives overrides its option:
//   max_tokens (max_completion_tokens)  -> max_new_tokens   (default: the checkpoint's, else 256; never past the context)
//   temperature  0 -> greedy, > 0 -> sampling at that temperature
//   top_p, seed  -> sampling with them (unless temperature is 0)
//   n            -> num_return_sequences      stop -> stop_strings (cut from the text, as OpenAI does)
//   logprobs / top_logprobs                    extras: num_beams, length_penalty, early_stopping, top_k,
//                                              min_p, repetition_penalty, min_tokens, return_token_ids
// A field OpenAI defines that changes nothing at its default (presence_penalty 0, logit_bias {}, echo
// false, best_of n, response_format text, user) is taken; at another value, and any field nobody
// defines, it is a 400 naming it, as OpenAI answers an unknown argument: a misspelt option never
// silently does nothing.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <lmdecode/config.hpp>
#include <lmdecode/io/generation_config_file.hpp>
#include <lmdecode/text/chat_template.hpp>
#include <lmdecode/text/tokenizer.hpp>

#include "api_error.hpp"

namespace lmdecode_serve {

/// What a server allows one request.
struct RequestLimits {
  int64_t max_n = 16;
  int64_t max_beams = 16;
  int64_t max_stops = 16;
  int64_t max_stop_bytes = 256;
  /// The most bytes of scores kept for top log-probs (new tokens x rows x vocabulary x 4).
  int64_t max_scores_bytes = int64_t{256} << 20;
};

/// The model a server serves, as requests are read against it.
struct ServedModel {
  std::string id;
  const lmdecode::Tokenizer& tokenizer;
  const lmdecode::ChatTemplate& chat_template;
  lmdecode::GenerationConfig defaults;
  int64_t context = 0;  ///< the model's positions (0: no limit known)
  int64_t vocab = 0;
  std::shared_ptr<const std::vector<std::string>> token_texts;  ///< each id's raw bytes: stop strings, log-probs' bytes
};

enum class Endpoint { completions, chat };

struct CompletionRequest {
  Endpoint endpoint = Endpoint::completions;
  lmdecode::TokenIds prompt;
  lmdecode::GenerationConfig config;
  std::vector<std::string> stops;
  bool stream = false;
  bool include_usage = false;      ///< stream_options.include_usage
  bool logprobs = false;           ///< each token's log-prob wanted
  int64_t top_logprobs = 0;        ///< and this many alternatives each
  bool return_token_ids = false;   ///< each choice's token ids (vLLM's extra)
  int64_t choices() const { return config.num_return_sequences; }
};

namespace detail {

/// Reads the fields of a request object by their OpenAI names; a wrong type is a 400 naming the field.
class RequestFields {
 public:
  explicit RequestFields(const nlohmann::json& body) : body_(body) {
    if (!body_.is_object()) throw ApiError(400, "the request body must be a JSON object");
  }

  bool has(const char* key) {
    known_.insert(key);
    return body_.contains(key) && !body_.at(key).is_null();
  }
  const nlohmann::json& raw(const char* key) const { return body_.at(key); }

  std::optional<int64_t> integer(const char* key, int64_t min, int64_t max) {
    if (!has(key)) return std::nullopt;
    const auto& v = body_.at(key);
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)))
      throw bad_field(key, fmt::format("'{}' must be an integer, got {}", key, shown(v)));
    const int64_t x = v.get<int64_t>();
    if (x < min || x > max) throw bad_field(key, fmt::format("'{}' must be from {} to {}, got {}", key, min, max, x));
    return x;
  }
  std::optional<double> number(const char* key, double min, double max) {
    if (!has(key)) return std::nullopt;
    const auto& v = body_.at(key);
    if (!v.is_number()) throw bad_field(key, fmt::format("'{}' must be a number, got {}", key, shown(v)));
    const double x = v.get<double>();
    if (!(x >= min && x <= max)) throw bad_field(key, fmt::format("'{}' must be from {} to {}, got {}", key, min, max, x));
    return x;
  }
  std::optional<bool> boolean(const char* key) {
    if (!has(key)) return std::nullopt;
    const auto& v = body_.at(key);
    if (!v.is_boolean()) throw bad_field(key, fmt::format("'{}' must be true or false, got {}", key, shown(v)));
    return v.get<bool>();
  }
  std::optional<std::string> string(const char* key) {
    if (!has(key)) return std::nullopt;
    const auto& v = body_.at(key);
    if (!v.is_string()) throw bad_field(key, fmt::format("'{}' must be a string, got {}", key, shown(v)));
    return v.get<std::string>();
  }

  /// Fields OpenAI defines that do nothing at their default: taken there, refused elsewhere.
  void accept_at_default(const char* key, const nlohmann::json& default_value) {
    if (has(key) && raw(key) != default_value)
      throw bad_field(key, fmt::format("'{}' is not supported by lmdecode-serve (only {})", key, default_value.dump()));
  }

  /// Every field not read so far is a 400 (OpenAI: "Unrecognized request argument supplied").
  void refuse_unknown() const {
    for (const auto& [key, value] : body_.items())
      if (!known_.count(key)) throw bad_field(key, fmt::format("unrecognized request argument supplied: '{}'", key));
  }

  /// A value as an error shows it: its JSON type, and short values themselves.
  static std::string shown(const nlohmann::json& v) {
    const std::string text = v.dump();
    return text.size() <= 40 ? fmt::format("{} {}", v.type_name(), text) : std::string(v.type_name());
  }

 private:
  const nlohmann::json& body_;
  std::set<std::string> known_;
};

inline void check_token_ids(const lmdecode::TokenIds& ids, int64_t vocab, const char* param) {
  for (const int64_t id : ids)
    if (id < 0 || id >= vocab) throw bad_field(param, fmt::format("token id {} is outside the vocabulary [0, {})", id, vocab));
}

/// /v1/completions: "prompt" is a string, an array of token ids, or an array of one of either.
inline lmdecode::TokenIds completion_prompt(RequestFields& f, const ServedModel& model) {
  if (!f.has("prompt")) throw bad_field("prompt", "'prompt' is required");
  nlohmann::json prompt = f.raw("prompt");
  if (prompt.is_array() && prompt.size() == 1 && (prompt[0].is_string() || prompt[0].is_array())) prompt = prompt[0];
  if (prompt.is_string()) return model.tokenizer.encode(prompt.get<std::string>());
  const bool ids = prompt.is_array() && std::all_of(prompt.begin(), prompt.end(), [](const auto& x) { return x.is_number_integer(); });
  if (!ids || prompt.empty())
    throw bad_field("prompt", "'prompt' must be a string or an array of token ids (one prompt a request: send several requests for a batch)");
  lmdecode::TokenIds tokens;
  for (const auto& x : prompt) tokens.push_back(x.is_number_unsigned() && x.get<uint64_t>() > uint64_t(INT64_MAX) ? -1 : x.get<int64_t>());
  check_token_ids(tokens, model.vocab, "prompt");
  return tokens;
}

/// A message's content as text: a string, or an array of {"type": "text", "text"} parts joined.
inline std::string message_text(const nlohmann::json& content, size_t index) {
  if (content.is_string()) return content.get<std::string>();
  const std::string where = fmt::format("messages[{}].content", index);
  if (!content.is_array()) throw bad_field(where, fmt::format("'{}' must be a string or an array of text parts", where));
  std::string text;
  for (const auto& part : content) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part.at("text").is_string())
      throw bad_field(where, fmt::format("'{}' holds a part that is not {{\"type\": \"text\", \"text\": ...}} (lmdecode-serve reads text only)", where));
    text += part.at("text").get<std::string>();
  }
  return text;
}

/// /v1/chat/completions: "messages" rendered with the checkpoint's chat template.
inline lmdecode::TokenIds chat_prompt(RequestFields& f, const ServedModel& model) {
  if (!f.has("messages")) throw bad_field("messages", "'messages' is required");
  const auto& messages = f.raw("messages");
  if (!messages.is_array() || messages.empty()) throw bad_field("messages", "'messages' must be a non-empty array of messages");
  auto rendered = nlohmann::ordered_json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (!m.is_object() || !m.contains("role") || !m.at("role").is_string())
      throw bad_field(fmt::format("messages[{}]", i), fmt::format("'messages[{}]' must be an object with a string 'role'", i));
    const std::string role = m.at("role").get<std::string>();
    if (role != "system" && role != "user" && role != "assistant" && role != "developer" && role != "tool")
      throw bad_field(fmt::format("messages[{}].role", i), fmt::format("'messages[{}].role' \"{}\" is not one of system, developer, user, assistant, tool", i, role));
    nlohmann::ordered_json message = nlohmann::ordered_json::parse(m.dump());
    message["content"] = m.contains("content") && !m.at("content").is_null() ? message_text(m.at("content"), i) : "";
    rendered.push_back(std::move(message));
  }
  try {
    return model.tokenizer.encode(model.chat_template.render(rendered, lmdecode::ChatTemplateOptions{}));
  } catch (const lmdecode::invalid_argument& e) {
    throw bad_field("messages", e.what());
  }
}

/// "stop": a string or an array of strings, none empty.
inline std::vector<std::string> stop_strings(RequestFields& f, const RequestLimits& limits) {
  if (!f.has("stop")) return {};
  const auto& stop = f.raw("stop");
  std::vector<std::string> stops;
  const auto add = [&](const nlohmann::json& s) {
    if (!s.is_string() || s.get<std::string>().empty()) throw bad_field("stop", "'stop' must be a non-empty string or an array of them");
    if (static_cast<int64_t>(s.get<std::string>().size()) > limits.max_stop_bytes)
      throw bad_field("stop", fmt::format("a stop string is at most {} bytes", limits.max_stop_bytes));
    stops.push_back(s.get<std::string>());
  };
  if (stop.is_array()) for (const auto& s : stop) add(s);
  else add(stop);
  if (static_cast<int64_t>(stops.size()) > limits.max_stops)
    throw bad_field("stop", fmt::format("'stop' holds {} strings, at most {}", stops.size(), limits.max_stops));
  return stops;
}

}  // namespace detail

namespace detail {

/// The prompt's token ids, checked against the context.
inline lmdecode::TokenIds prompt_of(RequestFields& f, Endpoint endpoint, const ServedModel& model) {
  auto prompt = endpoint == Endpoint::chat ? chat_prompt(f, model) : completion_prompt(f, model);
  const char* param = endpoint == Endpoint::chat ? "messages" : "prompt";
  if (prompt.empty()) throw bad_field(param, "the prompt is empty (no tokens)");
  if (model.context && static_cast<int64_t>(prompt.size()) >= model.context)
    throw ApiError(400, fmt::format("This model's maximum context length is {} tokens; the prompt is {} tokens", model.context, prompt.size()),
                   param, "context_length_exceeded");
  return prompt;
}

/// max_tokens (chat: max_completion_tokens first, OpenAI's newer name) as max_new_tokens: the
/// checkpoint's length where absent, else 256; never past the context.
inline int64_t new_tokens_of(RequestFields& f, Endpoint endpoint, const ServedModel& model, int64_t prompt_tokens) {
  const bool newer_name = endpoint == Endpoint::chat && f.has("max_completion_tokens");
  const auto max_tokens = f.integer(newer_name ? "max_completion_tokens" : "max_tokens", 1, INT64_MAX);
  f.has("max_tokens");  // known on both endpoints
  const int64_t room = model.context ? model.context - prompt_tokens : INT64_MAX;
  if (max_tokens && *max_tokens > room)
    throw ApiError(400, fmt::format("This model's maximum context length is {} tokens; you asked for {} (the prompt) + {} (max_tokens)",
                                    model.context, prompt_tokens, *max_tokens), "max_tokens", "context_length_exceeded");
  if (max_tokens) return *max_tokens;
  const bool checkpoint_length = model.defaults.max_new_tokens || model.defaults.max_length;
  return std::min(checkpoint_length ? model.defaults.resolved_max_new_tokens(prompt_tokens) : int64_t{256}, room);
}

/// The fields that choose the tokens, as generation_config.json overrides into `o`.
inline void read_decoding_fields(RequestFields& f, const RequestLimits& limits, nlohmann::json& o) {
  const auto temperature = f.number("temperature", 0, 2);
  const auto top_p = f.number("top_p", 0, 1);
  const auto seed = f.integer("seed", INT64_MIN, INT64_MAX);
  if (temperature) {
    o["do_sample"] = *temperature > 0;
    if (*temperature > 0) o["temperature"] = *temperature;
  } else if (top_p || seed) {
    o["do_sample"] = true;
  }
  if (top_p) o["top_p"] = *top_p;
  if (seed) o["seed"] = static_cast<uint64_t>(*seed);  // a negative seed is its two's complement
  if (const auto top_k = f.integer("top_k", -1, INT64_MAX)) o["top_k"] = std::max<int64_t>(*top_k, 0);
  if (const auto min_p = f.number("min_p", 0, 1)) o["min_p"] = *min_p;
  if (const auto penalty = f.number("repetition_penalty", 1e-6, 1e6)) o["repetition_penalty"] = *penalty;
  if (const auto min_tokens = f.integer("min_tokens", 0, INT64_MAX)) o["min_new_tokens"] = *min_tokens;
  o["num_return_sequences"] = f.integer("n", 1, limits.max_n).value_or(1);
  if (const auto beams = f.integer("num_beams", 1, limits.max_beams)) o["num_beams"] = *beams;
  if (const auto penalty = f.number("length_penalty", -1e6, 1e6)) o["length_penalty"] = *penalty;
  if (f.has("early_stopping")) {
    const auto& v = f.raw("early_stopping");
    if (!v.is_boolean() && v != "never") throw bad_field("early_stopping", "'early_stopping' must be true, false or \"never\"");
    o["early_stopping"] = v;
  }
}

/// What the answer shows: streaming, usage, log-probs, token ids.
inline void read_answer_fields(RequestFields& f, Endpoint endpoint, CompletionRequest& r) {
  r.stream = f.boolean("stream").value_or(false);
  if (f.has("stream_options")) {
    const auto& so = f.raw("stream_options");
    if (!so.is_object() || (so.contains("include_usage") && !so.at("include_usage").is_boolean()))
      throw bad_field("stream_options", "'stream_options' must be an object like {\"include_usage\": true}");
    r.include_usage = so.value("include_usage", false);
  }
  if (endpoint == Endpoint::chat) {
    r.logprobs = f.boolean("logprobs").value_or(false);
    r.top_logprobs = f.integer("top_logprobs", 0, 20).value_or(0);
    if (r.top_logprobs && !r.logprobs) throw bad_field("top_logprobs", "'top_logprobs' needs 'logprobs': true");
  } else if (const auto k = f.integer("logprobs", 0, 5)) {
    r.logprobs = true;
    r.top_logprobs = *k;
  }
  r.return_token_ids = f.boolean("return_token_ids").value_or(false);
}

/// Top log-probs keep every step's scores: refused where they would be more than the limit.
inline void check_kept_scores(const CompletionRequest& r, const ServedModel& model, const RequestLimits& limits) {
  const int64_t rows = std::max(r.config.num_beams, r.config.num_return_sequences);
  const double bytes = 4.0 * double(r.config.resolved_max_new_tokens(static_cast<int64_t>(r.prompt.size()))) * double(rows) * double(model.vocab);
  if (bytes > double(limits.max_scores_bytes))
    throw bad_field("top_logprobs", fmt::format("top log-probs keep {} MiB of scores for this request, more than this server allows ({} MiB): "
                                                "lower max_tokens, n or num_beams", int64_t(bytes) >> 20, limits.max_scores_bytes >> 20));
}

}  // namespace detail

/// Reads a request body of `endpoint` against `model`; anything wrong is an ApiError.
inline CompletionRequest read_completion_request(const nlohmann::json& body, Endpoint endpoint, const ServedModel& model,
                                                 const RequestLimits& limits) {
  detail::RequestFields f(body);
  CompletionRequest r;
  r.endpoint = endpoint;
  if (const auto name = f.string("model"); name && *name != model.id)
    throw ApiError(404, fmt::format("The model '{}' does not exist (this server serves '{}')", *name, model.id), "model", "model_not_found");
  r.prompt = detail::prompt_of(f, endpoint, model);
  nlohmann::json o = {{"max_new_tokens", detail::new_tokens_of(f, endpoint, model, static_cast<int64_t>(r.prompt.size()))}};
  detail::read_decoding_fields(f, limits, o);
  r.stops = detail::stop_strings(f, limits);
  if (!r.stops.empty()) o["stop_strings"] = r.stops;
  detail::read_answer_fields(f, endpoint, r);
  f.string("user");
  f.accept_at_default("presence_penalty", 0);
  f.accept_at_default("frequency_penalty", 0);
  f.accept_at_default("logit_bias", nlohmann::json::object());
  f.accept_at_default("echo", false);
  f.accept_at_default("best_of", o["num_return_sequences"]);
  f.accept_at_default("response_format", {{"type", "text"}});
  f.refuse_unknown();
  try {
    r.config = lmdecode::generation_config_overrides(o, model.defaults, "the request");
  } catch (const lmdecode::invalid_argument& e) {
    throw ApiError(400, e.what());
  }
  if (!r.stops.empty()) r.config.token_texts = model.token_texts;
  if (r.top_logprobs) {  // the alternatives come from the scores, kept for the whole answer
    r.config.output_scores = true;
    detail::check_kept_scores(r, model, limits);
  }
  return r;
}

}  // namespace lmdecode_serve
