#pragma once
// lmdecode: Hugging Face generate() semantics on libtorch, header-only.
// This umbrella includes the decoding library (CMake target lmdecode::lmdecode). It leaves out what
// needs more than libtorch, fmt and nlohmann-json, or is for measuring rather than decoding:
// adapters/torchscript.hpp (pulls in <torch/script.h>), text/ and jinja/ (the tokenizer and chat
// templates: PCRE2 and utf8proc, target lmdecode::tokenizer) and op_counter.hpp.

#include "lmdecode/version.hpp"
#include "lmdecode/error.hpp"
#include "lmdecode/config.hpp"
#include "lmdecode/cache.hpp"
#include "lmdecode/model.hpp"
#include "lmdecode/result.hpp"
#include "lmdecode/streaming.hpp"
#include "lmdecode/threads.hpp"
#include "lmdecode/logits/default_processors.hpp"
#include "lmdecode/grammar/token_grammar.hpp"
#include "lmdecode/decoders/greedy.hpp"
#include "lmdecode/decoders/beam_search.hpp"
#include "lmdecode/decoders/conversation.hpp"
#include "lmdecode/decoders/generate.hpp"
#include "lmdecode/decoders/sampling.hpp"
#include "lmdecode/decoders/speculative.hpp"
#include "lmdecode/engine.hpp"
#include "lmdecode/adapters/hf_style_model.hpp"
#include "lmdecode/io/generation_config_file.hpp"
#include "lmdecode/io/safetensors.hpp"
#include "lmdecode/models/checkpoint.hpp"
#include "lmdecode/models/model_config.hpp"
#include "lmdecode/models/weight_format.hpp"
