#pragma once
// The embedded runtime's public surface: the one header other modules include
// (tests/architecture checks it). The folders below are its internals:
//
//   checkpoint/  where weights come from: safetensors, config.json and GPTQ
//                settings, the tensor table, Checkpoint, hub downloads, synthetic
//                weights (WeightSource: checkpoint or random with real shapes)
//   text/        tokenizer (byte-level BPE, streaming decode), chat templates (Jinja)
//   model/       the one decoder stack over a backend's ops, hybrid memory (K/V
//                pages + recurrent state slots), the plain reference path;
//                qwen3_5/ holds the Gated DeltaNet mixer
//   kernels/     backends: cpu/ (SIMD GEMM kernels, thread pool, the CPU ops),
//                cuda/ (the Marlin-class INT4 GEMM)
//   generate/    continuous batching, sampling, stop strings
//   platform/    device selection, host memory
//   base/        invariant checks (QE_CHECK), 16-bit float formats
//
//   auto model = Model::load("models/qwen2.5-coder-0.5b-gptq", {.threads = 0});
//   Tokenizer tokenizer = Tokenizer::from_file(model->directory());
//   Generator generator(*model, tokenizer, {.max_batch = 16});
//   generator.submit({.id = 1, .prompt = tokenizer.encode(text), .max_new_tokens = 512});
//   generator.run([](GenerationResult r) { /* r.text, r.finish */ });
#include "runtime/base/check.hpp"
#include "runtime/checkpoint/checkpoint.hpp"
#include "runtime/checkpoint/hub.hpp"
#include "runtime/checkpoint/model_config.hpp"
#include "runtime/checkpoint/synthetic.hpp"
#include "runtime/generate/generator.hpp"
#include "runtime/generate/sampling.hpp"
#include "runtime/model/model.hpp"
#include "runtime/model/reference.hpp"
#include "runtime/model/teacher_forcing.hpp"
#include "runtime/platform/device.hpp"
#include "runtime/platform/host_memory.hpp"
#include "runtime/text/chat_template.hpp"
#include "runtime/text/tokenizer.hpp"
