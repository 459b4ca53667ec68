#pragma once
// lmdecode: Hugging Face generate() semantics on libtorch, header-only.
// This umbrella includes everything except adapters/torchscript.hpp (which pulls in <torch/script.h>).

#include "lmdecode/version.hpp"
#include "lmdecode/error.hpp"
#include "lmdecode/config.hpp"
#include "lmdecode/cache.hpp"
#include "lmdecode/model.hpp"
#include "lmdecode/result.hpp"
#include "lmdecode/streaming.hpp"
#include "lmdecode/threads.hpp"
#include "lmdecode/logits/default_processors.hpp"
#include "lmdecode/decoders/greedy.hpp"
#include "lmdecode/decoders/beam_search.hpp"
#include "lmdecode/decoders/conversation.hpp"
#include "lmdecode/decoders/generate.hpp"
#include "lmdecode/decoders/sampling.hpp"
#include "lmdecode/adapters/hf_style_model.hpp"
#include "lmdecode/io/generation_config_file.hpp"
#include "lmdecode/io/model_config.hpp"
#include "lmdecode/io/safetensors.hpp"
#include "lmdecode/models/load_pretrained.hpp"
