#!/usr/bin/env python3
"""Writes a random-weight GGUF with the shapes of Qwen2.5-Coder-0.5B, for timing
llama.cpp against quanteval on the same model shape (tools/bench_llamacpp.sh).

    write_gguf.py --out FILE [--quant q4_0|q4_k] [--seed S] [--layers N]

Shapes (the synthetic qwen2.5-0.5b of runtime/checkpoint/synthetic.hpp): hidden 896,
24 layers, 14 query / 2 key-value heads of 64, q/k/v bias, intermediate 4864, vocab
151936, output tied to the F16 token embedding. Every projection is quantized:
  q4_0  Q4_0 (blocks of 32, one f16 scale): every tensor.
  q4_k  Q4_K (super-blocks of 256) where the row length allows it (ffn_down, K = 4864);
        the K = 896 rows (896 = 3.5 x 256) fall back to Q4_0, as llama.cpp's own
        quantizer falls back for rows that are not a multiple of 256.
Values are random but well-formed (finite scales, small norms); speed does not depend
on them. The vocabulary is a placeholder SentencePiece one (<unk>, <s>, </s>, the 256
byte tokens, then "t<id>"), enough for llama.cpp to load the model and run token ids.

Only the Python standard library and numpy. Written from the GGUF v3 layout: header
(magic, version, tensor count, key-value count), key-values, tensor infos (name, dims
innermost first, ggml type, offset), padding to general.alignment, tensor data.
"""
import argparse
import struct
import sys

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
ALIGNMENT = 32

# gguf value types
T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY = 4, 5, 6, 7, 8, 9
# ggml tensor types
F32, F16, Q4_0, Q4_K = 0, 1, 2, 12
BLOCK = {F32: (1, 4), F16: (1, 2), Q4_0: (32, 18), Q4_K: (256, 144)}  # (values, bytes) per block
FILE_TYPE = {"q4_0": 2, "q4_k": 15}  # LLAMA_FTYPE_MOSTLY_Q4_0, LLAMA_FTYPE_MOSTLY_Q4_K_M


def gguf_string(text):
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


class Writer:
    def __init__(self):
        self.kv = []  # encoded key-value records
        self.tensors = []  # (name, dims, type, numpy uint8/float array)

    def add(self, key, vtype, value):
        record = gguf_string(key) + struct.pack("<I", vtype)
        if vtype == T_STRING:
            record += gguf_string(value)
        elif vtype == T_UINT32:
            record += struct.pack("<I", value)
        elif vtype == T_INT32:
            record += struct.pack("<i", value)
        elif vtype == T_FLOAT32:
            record += struct.pack("<f", value)
        elif vtype == T_BOOL:
            record += struct.pack("<?", value)
        else:
            raise ValueError(f"unsupported scalar type {vtype} for {key}")
        self.kv.append(record)

    def add_array(self, key, etype, values):
        record = gguf_string(key) + struct.pack("<IIQ", T_ARRAY, etype, len(values))
        if etype == T_STRING:
            record += b"".join(gguf_string(v) for v in values)
        elif etype == T_FLOAT32:
            record += np.asarray(values, dtype="<f4").tobytes()
        elif etype == T_INT32:
            record += np.asarray(values, dtype="<i4").tobytes()
        else:
            raise ValueError(f"unsupported array type {etype} for {key}")
        self.kv.append(record)

    def tensor(self, name, dims, ggml_type, data):
        values = int(np.prod(dims))
        per_block, block_bytes = BLOCK[ggml_type]
        if dims[0] % per_block:
            raise ValueError(f"{name}: row length {dims[0]} is not a multiple of {per_block}")
        expected = values // per_block * block_bytes
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        if raw.size != expected:
            raise ValueError(f"{name}: {raw.size} bytes, expected {expected}")
        self.tensors.append((name, dims, ggml_type, raw))

    def write(self, path):
        with open(path, "wb") as out:
            out.write(GGUF_MAGIC + struct.pack("<IQQ", GGUF_VERSION, len(self.tensors), len(self.kv)))
            for record in self.kv:
                out.write(record)
            offset = 0
            offsets = []
            for name, dims, ggml_type, raw in self.tensors:
                out.write(gguf_string(name) + struct.pack("<I", len(dims)))
                out.write(struct.pack(f"<{len(dims)}Q", *dims))
                out.write(struct.pack("<IQ", ggml_type, offset))
                offsets.append(offset)
                offset += (raw.size + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
            out.write(b"\0" * (-out.tell() % ALIGNMENT))
            start = out.tell()
            for (name, _, _, raw), rel in zip(self.tensors, offsets):
                out.write(b"\0" * (start + rel - out.tell()))
                out.write(raw.tobytes())
            out.write(b"\0" * (-out.tell() % ALIGNMENT))


def random_q4_0(rng, rows, cols):
    blocks = rows * cols // 32
    raw = rng.integers(0, 256, size=(blocks, 18), dtype=np.uint8)
    scale = rng.uniform(0.002, 0.02, size=blocks).astype("<f2")
    raw[:, 0:2] = scale.view(np.uint8).reshape(blocks, 2)
    return raw


def random_q4_k(rng, rows, cols):
    blocks = rows * cols // 256
    raw = rng.integers(0, 256, size=(blocks, 144), dtype=np.uint8)  # 6-bit sub-scales: any bits are valid
    d = rng.uniform(0.0002, 0.002, size=blocks).astype("<f2")
    dmin = rng.uniform(0.0002, 0.002, size=blocks).astype("<f2")
    raw[:, 0:2] = d.view(np.uint8).reshape(blocks, 2)
    raw[:, 2:4] = dmin.view(np.uint8).reshape(blocks, 2)
    return raw


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--quant", choices=sorted(FILE_TYPE), default="q4_0")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--layers", type=int, default=24)
    args = parser.parse_args()

    hidden, inter, heads, kv_heads, head_dim, vocab = 896, 4864, 14, 2, 64, 151936
    rng = np.random.default_rng(args.seed)
    w = Writer()
    arch = "qwen2"
    w.add("general.architecture", T_STRING, arch)
    w.add("general.name", T_STRING, f"synthetic qwen2.5-0.5b shape ({args.quant}, random weights)")
    w.add("general.alignment", T_UINT32, ALIGNMENT)
    w.add("general.file_type", T_UINT32, FILE_TYPE[args.quant])
    w.add(f"{arch}.block_count", T_UINT32, args.layers)
    w.add(f"{arch}.context_length", T_UINT32, 32768)
    w.add(f"{arch}.embedding_length", T_UINT32, hidden)
    w.add(f"{arch}.feed_forward_length", T_UINT32, inter)
    w.add(f"{arch}.attention.head_count", T_UINT32, heads)
    w.add(f"{arch}.attention.head_count_kv", T_UINT32, kv_heads)
    w.add(f"{arch}.rope.freq_base", T_FLOAT32, 1000000.0)
    w.add(f"{arch}.attention.layer_norm_rms_epsilon", T_FLOAT32, 1e-6)

    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"t{i}" for i in range(len(tokens), vocab)]
    types = [2, 3, 3] + [6] * 256 + [1] * (vocab - 259)  # unknown, control, byte, normal
    w.add("tokenizer.ggml.model", T_STRING, "llama")
    w.add_array("tokenizer.ggml.tokens", T_STRING, tokens)
    w.add_array("tokenizer.ggml.scores", T_FLOAT32, [0.0] * vocab)
    w.add_array("tokenizer.ggml.token_type", T_INT32, types)
    w.add("tokenizer.ggml.unknown_token_id", T_UINT32, 0)
    w.add("tokenizer.ggml.bos_token_id", T_UINT32, 1)
    w.add("tokenizer.ggml.eos_token_id", T_UINT32, 2)
    w.add("tokenizer.ggml.add_bos_token", T_BOOL, False)

    def quantized(name, rows, cols):  # weight [rows = out, cols = in]; GGUF dims innermost first
        kind = Q4_K if args.quant == "q4_k" and cols % 256 == 0 else Q4_0
        data = random_q4_k(rng, rows, cols) if kind == Q4_K else random_q4_0(rng, rows, cols)
        w.tensor(name, [cols, rows], kind, data)

    def vector(name, size, value=None):
        data = np.full(size, value, dtype="<f4") if value is not None else rng.normal(0, 0.02, size).astype("<f4")
        w.tensor(name, [size], F32, data)

    w.tensor("token_embd.weight", [hidden, vocab], F16, rng.normal(0, 0.02, size=vocab * hidden).astype("<f2"))
    vector("output_norm.weight", hidden, 1.0)
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    for layer in range(args.layers):
        p = f"blk.{layer}."
        vector(p + "attn_norm.weight", hidden, 1.0)
        quantized(p + "attn_q.weight", q_out, hidden)
        vector(p + "attn_q.bias", q_out)
        quantized(p + "attn_k.weight", kv_out, hidden)
        vector(p + "attn_k.bias", kv_out)
        quantized(p + "attn_v.weight", kv_out, hidden)
        vector(p + "attn_v.bias", kv_out)
        quantized(p + "attn_output.weight", hidden, q_out)
        vector(p + "ffn_norm.weight", hidden, 1.0)
        quantized(p + "ffn_gate.weight", inter, hidden)
        quantized(p + "ffn_up.weight", inter, hidden)
        quantized(p + "ffn_down.weight", hidden, inter)
    w.write(args.out)
    print(f"wrote {args.out}: {len(w.tensors)} tensors, {args.quant}", file=sys.stderr)


if __name__ == "__main__":
    main()
