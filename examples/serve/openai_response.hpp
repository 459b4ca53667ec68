#pragma once
// The JSON that answers a completion request, in OpenAI's shapes: a whole response
// ("text_completion" / "chat.completion") or one server-sent chunk of a stream
// ("text_completion" / "chat.completion.chunk"), each choice's finish_reason and log-probs, usage.

#include <ATen/ATen.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <lmdecode/result.hpp>
#include <lmdecode/text/tokenizer.hpp>

#include "completion_request.hpp"

namespace lmdecode_serve {

/// OpenAI's name for why a choice ended: "stop" (EOS, a stop string or sequence, the grammar's
/// end), "length" (max_tokens, or the time limit), "cancelled" (the server's shutdown ended it).
inline const char* finish_reason(lmdecode::FinishReason reason, bool text_stopped) {
  if (text_stopped) return "stop";
  switch (reason) {
    case lmdecode::FinishReason::length:
    case lmdecode::FinishReason::time: return "length";
    case lmdecode::FinishReason::cancelled: return "cancelled";
    default: return "stop";
  }
}

/// What every response and chunk of one request shares.
struct ResponseHeader {
  std::string id;
  std::string model;
  int64_t created = static_cast<int64_t>(std::time(nullptr));
  Endpoint endpoint = Endpoint::completions;

  nlohmann::json object(bool chunk) const {
    const char* type = endpoint == Endpoint::completions ? "text_completion" : chunk ? "chat.completion.chunk" : "chat.completion";
    return {{"id", id}, {"object", type}, {"created", created}, {"model", model}};
  }
};

inline nlohmann::json usage(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion_tokens}, {"total_tokens", prompt_tokens + completion_tokens}};
}

/// Each new token's log-prob (the distribution it was chosen from: after the processors and the
/// sampling warpers, as Hypothesis::token_logprobs) and, with top_logprobs, the best alternatives
/// under the same distribution, from the kept scores.
class TokenLogprobs {
 public:
  TokenLogprobs(const ServedModel& model, const lmdecode::GenerationResult& result, const CompletionRequest& request)
      : tokenizer_(model.tokenizer), token_texts_(*model.token_texts), result_(result), request_(request) {}

  /// Choice `i`'s log-probs as its endpoint writes them.
  nlohmann::json of(size_t i) const {
    const auto& h = result_.hypotheses[0][i];
    return request_.endpoint == Endpoint::chat ? chat(h, i) : completion(h, i);
  }

 private:
  struct Alternative {
    int64_t id;
    double logprob;
  };

  /// The `top_logprobs` best tokens where choice `i` chose its token `step`.
  std::vector<Alternative> alternatives(size_t i, size_t step) const {
    if (!request_.top_logprobs) return {};
    const bool beams = request_.config.num_beams > 1;
    const int64_t row = beams ? result_.beam_indices[static_cast<int64_t>(i)][static_cast<int64_t>(step)].item<int64_t>() : static_cast<int64_t>(i);
    auto scores = result_.scores[step][row].to(at::kCPU, at::kFloat);
    if (!beams) scores = at::log_softmax(scores, 0);  // beam search's scores are log-probs already
    const auto [values, ids] = scores.topk(std::min<int64_t>(request_.top_logprobs, scores.size(0)));
    std::vector<Alternative> out;
    for (int64_t k = 0; k < ids.size(0); ++k) out.push_back({ids[k].item<int64_t>(), values[k].item<double>()});
    return out;
  }

  std::string text_of(int64_t id) const { return tokenizer_.decode({id}); }
  static nlohmann::json finite(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(-9999.0); }  // OpenAI's floor

  nlohmann::json chat(const lmdecode::Hypothesis& h, size_t i) const {
    const auto entry = [&](int64_t id, double logprob) {
      const std::string& raw = token_texts_[static_cast<size_t>(id)];
      return nlohmann::json{{"token", text_of(id)}, {"logprob", finite(logprob)}, {"bytes", std::vector<uint8_t>(raw.begin(), raw.end())}};
    };
    auto content = nlohmann::json::array();
    for (size_t t = 0; t < h.tokens.size(); ++t) {
      auto token = entry(h.tokens[t], h.token_logprobs[t]);
      token["top_logprobs"] = nlohmann::json::array();
      for (const auto& a : alternatives(i, t)) token["top_logprobs"].push_back(entry(a.id, a.logprob));
      content.push_back(std::move(token));
    }
    return {{"content", content}};
  }

  nlohmann::json completion(const lmdecode::Hypothesis& h, size_t i) const {
    nlohmann::json out = {{"tokens", nlohmann::json::array()}, {"token_logprobs", nlohmann::json::array()},
                          {"top_logprobs", request_.top_logprobs ? nlohmann::json::array() : nlohmann::json()},
                          {"text_offset", nlohmann::json::array()}};
    lmdecode::Tokenizer::StreamDecoder offsets(tokenizer_, /*skip_special_tokens=*/true);
    size_t offset = 0;
    for (size_t t = 0; t < h.tokens.size(); ++t) {
      out["tokens"].push_back(text_of(h.tokens[t]));
      out["token_logprobs"].push_back(finite(h.token_logprobs[t]));
      out["text_offset"].push_back(offset);
      offset += offsets.push(h.tokens[t]).size();
      if (!request_.top_logprobs) continue;
      auto top = nlohmann::json::object();
      for (const auto& a : alternatives(i, t)) top[text_of(a.id)] = finite(a.logprob);
      out["top_logprobs"].push_back(std::move(top));
    }
    return out;
  }

  const lmdecode::Tokenizer& tokenizer_;
  const std::vector<std::string>& token_texts_;  // each id's raw bytes (the served model's, made once)
  const lmdecode::GenerationResult& result_;
  const CompletionRequest& request_;
};

/// One choice of a whole response, or of a stream's chunk (`chunk`: its text is a delta).
inline nlohmann::json choice_json(Endpoint endpoint, size_t index, const std::string& text, bool chunk) {
  nlohmann::json choice = {{"index", index}};
  if (endpoint == Endpoint::completions) choice["text"] = text;
  else if (chunk) choice["delta"] = {{"content", text}};
  else choice["message"] = {{"role", "assistant"}, {"content", text}};
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = nullptr;
  return choice;
}

}  // namespace lmdecode_serve
