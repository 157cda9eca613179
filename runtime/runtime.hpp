#pragma once
// The embedded runtime's public surface, in one include:
//
//   checkpoint.hpp      Checkpoint::open(dir): config.json, quantization, safetensors tensors
//   model_config.hpp    ModelConfig (architecture, shapes, layer kinds, eos ids)
//   tokenizer.hpp       Tokenizer (byte-level BPE), StreamingDecoder
//   chat_template.hpp   ChatTemplate::render_chat (Jinja subset of transformers' templates)
//   model.hpp           Model::load(dir, LoadOptions), forward steps, logits_for, hidden_states_for
//   model_reference.hpp reference_forward: the plain-loop statement of the math
//   generator.hpp       Generator: continuous batching, sampling, stop strings, GenerationResult
//   sampling.hpp        SamplingParams, sampling_distribution, sample_token
//   kv_cache.hpp        KvCache (paged, sized from a byte budget)
//   linear.hpp          Linear: dense or GPTQ INT4 projection
//   synthetic.hpp       random-weight models with real shapes, for benchmarks
//   device.hpp          select_device("cpu" | "cuda" | "auto")
//
//   auto model = Model::load("models/qwen2.5-coder-0.5b-gptq", {.threads = 0});
//   Tokenizer tokenizer = Tokenizer::from_file(model->directory());
//   Generator generator(*model, tokenizer, {.max_batch = 16});
//   generator.submit({.id = 1, .prompt = tokenizer.encode(text), .max_new_tokens = 512});
//   generator.run([](GenerationResult r) { /* r.text, r.finish */ });
#include "runtime/base/check.hpp"
#include "runtime/text/chat_template.hpp"
#include "runtime/checkpoint/checkpoint.hpp"
#include "runtime/checkpoint/hub.hpp"
#include "runtime/platform/device.hpp"
#include "runtime/platform/host_memory.hpp"
#include "runtime/generate/generator.hpp"
#include "runtime/model/kv_cache.hpp"
#include "runtime/model/linear.hpp"
#include "runtime/model/model.hpp"
#include "runtime/checkpoint/model_config.hpp"
#include "runtime/model/reference.hpp"
#include "runtime/generate/sampling.hpp"
#include "runtime/checkpoint/synthetic.hpp"
#include "runtime/text/tokenizer.hpp"
