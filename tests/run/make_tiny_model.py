#!/usr/bin/env python3
"""Writes a tiny random-weight Qwen3 checkpoint that carries the real Qwen3
tokenizer and chat template, for end-to-end tests of `quanteval run`.

The shapes are tiny except the vocabulary (151936, the tokenizer's), so every
stage runs for real -- tokenization, chat template, prefill, decode, stop
strings, extraction, sandbox -- while pass@1 stays 0. Standard library only.

  make_tiny_model.py --tokenizer DIR --out DIR [--gptq] [--seed N]
"""
import argparse
import json
import os
import random
import shutil
import struct

HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, INTER, VOCAB, GROUP = 64, 2, 2, 1, 32, 128, 151936, 32


def bf16_bytes(values):
    out = bytearray()
    for v in values:
        bits = struct.unpack("<I", struct.pack("<f", v))[0]
        bits += 0x7FFF + ((bits >> 16) & 1)  # round to nearest even
        out += struct.pack("<H", (bits >> 16) & 0xFFFF)
    return bytes(out)


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(text)))
        handle.write(text)
        for blob in blobs:
            handle.write(blob)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--gptq", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    # A small embedding scale keeps the (tied) lm_head from repeating the last token, so
    # the outputs vary from token to token: what a batch-invariance test needs.
    parser.add_argument("--embed-scale", type=float, default=1.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)

    def dense(rows, cols, scale):
        return ("BF16", [rows, cols], bf16_bytes(rng.gauss(0, scale) for _ in range(rows * cols)))

    def ones(n):
        return ("BF16", [n], bf16_bytes([1.0] * n))

    tensors = {"model.embed_tokens.weight": dense(VOCAB, HIDDEN, args.embed_scale), "model.norm.weight": ones(HIDDEN)}
    linears = {}
    for layer in range(LAYERS):
        p = f"model.layers.{layer}."
        tensors[p + "input_layernorm.weight"] = ones(HIDDEN)
        tensors[p + "post_attention_layernorm.weight"] = ones(HIDDEN)
        tensors[p + "self_attn.q_norm.weight"] = ones(HEAD_DIM)
        tensors[p + "self_attn.k_norm.weight"] = ones(HEAD_DIM)
        linears[p + "self_attn.q_proj"] = (HEADS * HEAD_DIM, HIDDEN)
        linears[p + "self_attn.k_proj"] = (KV_HEADS * HEAD_DIM, HIDDEN)
        linears[p + "self_attn.v_proj"] = (KV_HEADS * HEAD_DIM, HIDDEN)
        linears[p + "self_attn.o_proj"] = (HIDDEN, HEADS * HEAD_DIM)
        linears[p + "mlp.gate_proj"] = (INTER, HIDDEN)
        linears[p + "mlp.up_proj"] = (INTER, HIDDEN)
        linears[p + "mlp.down_proj"] = (HIDDEN, INTER)
    for name, (n, k) in linears.items():
        if not args.gptq:
            tensors[name + ".weight"] = dense(n, k, k ** -0.5)
            continue
        # Any bit pattern is a valid set of eight 4-bit weights; zeros stored 7 (v1: real zero 8).
        tensors[name + ".qweight"] = ("I32", [k // 8, n], bytes(rng.getrandbits(8) for _ in range(k // 8 * n * 4)))
        tensors[name + ".qzeros"] = ("I32", [k // GROUP, n // 8], b"\x77\x77\x77\x77" * (k // GROUP * n // 8))
        scale = (k ** -0.5) / 4.6  # uniform 4-bit values have standard deviation ~4.6
        tensors[name + ".scales"] = ("F16", [k // GROUP, n],
                                     b"".join(struct.pack("<e", scale * rng.uniform(0.8, 1.2)) for _ in range(k // GROUP * n)))
        tensors[name + ".g_idx"] = ("I32", [k], b"".join(struct.pack("<i", i // GROUP) for i in range(k)))
    write_safetensors(os.path.join(args.out, "model.safetensors"), tensors)

    config = {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": HIDDEN,
        "intermediate_size": INTER, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "vocab_size": VOCAB, "hidden_act": "silu",
        "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "tie_word_embeddings": True, "attention_bias": False, "torch_dtype": "bfloat16",
        "bos_token_id": 151643, "eos_token_id": 151645,
    }
    if args.gptq:
        config["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": GROUP, "sym": True,
                                         "desc_act": False, "checkpoint_format": "gptq"}
    with open(os.path.join(args.out, "config.json"), "w") as handle:
        json.dump(config, handle, indent=2)
    with open(os.path.join(args.out, "generation_config.json"), "w") as handle:
        json.dump({"eos_token_id": [151645, 151643], "do_sample": False}, handle)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(args.tokenizer, name), os.path.join(args.out, name))


if __name__ == "__main__":
    main()
