#!/usr/bin/env python3
"""Writes a random-weight GGUF with the shapes of Qwen2.5-Coder-0.5B or Qwen3.5-0.8B, for
timing llama.cpp against quanteval on the same model shape (tools/bench_llamacpp.sh).

    write_gguf.py --out FILE [--shape qwen2.5-0.5b|qwen3.5-0.8b] [--quant q4_0|q4_k] [--seed S] [--layers N]

The shapes are the synthetic ones of runtime/checkpoint/synthetic.cpp (the checkpoints
tools/synthetic_checkpoint writes for quanteval), and the tensors quantized here are the
ones quanteval runs as GPTQ INT4; what quanteval keeps in 16 bits stays F16 (tensors
llama.cpp only takes in F32 are F32, see below).

qwen2.5-0.5b (default; llama.cpp arch qwen2): hidden 896, 24 layers, 14 query / 2 key-value
  heads of 64, q/k/v bias, intermediate 4864, vocab 151936, output tied to the F16 token
  embedding. Every projection is quantized.
qwen3.5-0.8b (llama.cpp arch qwen35): hidden 1024, 24 layers, every 4th (3, 7, ..., 23) gated
  full attention, the other 18 Gated DeltaNet linear attention; intermediate 3584, vocab
  248320, output tied to the F16 token embedding, RMS eps 1e-6.
  full attention: 8 query / 2 key-value heads of 256; attn_q is 2 x 8 x 256 = 4096 rows wide
  (per head the 256 query rows, then the 256 rows of the sigmoid output gate, as llama.cpp
  splits it), attn_q_norm / attn_k_norm over the head dim; partial rotary: 64 of the 256
  channels (rope.dimension_count 64), theta 1e7, written as llama.cpp's interleaved M-RoPE
  sections [11, 11, 10, 0] (32 pairs; text positions are the same on every axis, so this is
  quanteval's plain RoPE over those 64 channels).
  linear attention: 16 key and 16 value heads of 128 (ssm.group_count 16, ssm.time_step_rank
  16, ssm.state_size 128, ssm.inner_size 2048); attn_qkv 1024 -> 6144 (q, k, v: the conv
  channels), attn_gate (z) 1024 -> 2048, ssm_beta / ssm_alpha 1024 -> 16 (quanteval's
  in_proj_b / in_proj_a), depthwise ssm_conv1d of 4 taps per channel, ssm_dt.bias and
  ssm_a (= -exp(A_log), as llama.cpp's converter stores it) per value head, ssm_norm over
  the value head dim, ssm_out 2048 -> 1024. Key and value head counts are equal, so there is
  none of the V-head reordering llama.cpp's converter does when they differ. No MTP block
  (nextn_predict_layers absent).
  The norms are stored as llama.cpp applies them: Qwen3.5's zero-centred (1 + w) norms as
  1 + 0 = 1, the gated ssm_norm (not zero-centred) as 1.
Quantization (--quant):
  q4_0  Q4_0 (blocks of 32, one f16 scale) for every quantized matrix.
  q4_k  Q4_K (super-blocks of 256) where the row length allows it; rows that are not a
        multiple of 256 fall back to Q4_0, as llama.cpp's own quantizer falls back. For
        qwen2.5-0.5b only ffn_down (K = 4864) is Q4_K, the K = 896 rows (3.5 x 256) are Q4_0;
        for qwen3.5-0.8b every quantized row (K = 1024, 2048, 3584) is Q4_K.
Types that are not quanteval's (its checkpoint stores all of these BF16):
  ssm_conv1d (qwen3.5-0.8b) is F32: llama.cpp's CPU ssm_conv only reads F32 kernels (its
  converter and quantizer never store it otherwise). Norms, ssm_a and ssm_dt.bias are F32,
  as llama.cpp keeps every 1-D tensor. quanteval widens all of these to F32 when it loads
  them, so at run time they match. ssm_beta / ssm_alpha (qwen3.5-0.8b) are F16 where
  quanteval runs BF16 (never INT4; llama.cpp's own quantizer would quantize them), and
  token_embd (also the tied lm_head) is F16 where quanteval's is BF16: same bytes per
  weight, a different 16-bit format.
Values are random but well-formed (finite scales, small norms); speed does not depend
on them. The vocabulary is a placeholder SentencePiece one (<unk>, <s>, </s>, the 256
byte tokens, then "t<id>"), enough for llama.cpp to load the model and run token ids.

Only the Python standard library and numpy. Written from the GGUF v3 layout: header
(magic, version, tensor count, key-value count), key-values, tensor infos (name, dims
innermost first, ggml type, offset), padding to general.alignment, tensor data. Names,
metadata keys and shapes for qwen35 follow llama.cpp's loader (src/models/qwen35.cpp) in
the release node-llama-cpp 3.21.1 bundles.
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


SHAPES = {
    # name: (llama.cpp arch, hidden, intermediate, heads, kv heads, head dim, vocab, layers)
    "qwen2.5-0.5b": ("qwen2", 896, 4864, 14, 2, 64, 151936, 24),
    "qwen3.5-0.8b": ("qwen35", 1024, 3584, 8, 2, 256, 248320, 24),
}
# qwen3.5-0.8b's Gated DeltaNet layers (synthetic.cpp: linear_* of the config).
QWEN35_LINEAR = dict(key_heads=16, value_heads=16, head_dim=128, conv_kernel=4, full_attention_interval=4)
QWEN35_ROPE = dict(theta=10000000.0, partial_rotary_factor=0.25, sections=[11, 11, 10, 0])


def add_tokenizer(w, vocab):
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-0.5b")
    parser.add_argument("--quant", choices=sorted(FILE_TYPE), default="q4_0")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--layers", type=int, default=None, help="default: the shape's 24")
    args = parser.parse_args()

    arch, hidden, inter, heads, kv_heads, head_dim, vocab, layers = SHAPES[args.shape]
    if args.layers is not None:
        layers = args.layers
    rng = np.random.default_rng(args.seed)
    w = Writer()
    w.add("general.architecture", T_STRING, arch)
    w.add("general.name", T_STRING, f"synthetic {args.shape} shape ({args.quant}, random weights)")
    w.add("general.alignment", T_UINT32, ALIGNMENT)
    w.add("general.file_type", T_UINT32, FILE_TYPE[args.quant])
    w.add(f"{arch}.block_count", T_UINT32, layers)
    w.add(f"{arch}.context_length", T_UINT32, 32768 if arch == "qwen2" else 262144)
    w.add(f"{arch}.embedding_length", T_UINT32, hidden)
    w.add(f"{arch}.feed_forward_length", T_UINT32, inter)
    w.add(f"{arch}.attention.head_count", T_UINT32, heads)
    w.add(f"{arch}.attention.head_count_kv", T_UINT32, kv_heads)
    if arch == "qwen2":
        w.add(f"{arch}.rope.freq_base", T_FLOAT32, 1000000.0)
    else:
        la = QWEN35_LINEAR
        # head_dim 256 is not hidden / heads (128): both lengths are explicit.
        w.add(f"{arch}.attention.key_length", T_UINT32, head_dim)
        w.add(f"{arch}.attention.value_length", T_UINT32, head_dim)
        w.add(f"{arch}.rope.freq_base", T_FLOAT32, QWEN35_ROPE["theta"])
        w.add(f"{arch}.rope.dimension_count", T_UINT32, int(head_dim * QWEN35_ROPE["partial_rotary_factor"]))
        w.add_array(f"{arch}.rope.dimension_sections", T_INT32, QWEN35_ROPE["sections"])
        w.add(f"{arch}.ssm.conv_kernel", T_UINT32, la["conv_kernel"])
        w.add(f"{arch}.ssm.state_size", T_UINT32, la["head_dim"])  # key head dim
        w.add(f"{arch}.ssm.group_count", T_UINT32, la["key_heads"])
        w.add(f"{arch}.ssm.time_step_rank", T_UINT32, la["value_heads"])
        w.add(f"{arch}.ssm.inner_size", T_UINT32, la["value_heads"] * la["head_dim"])
        w.add(f"{arch}.full_attention_interval", T_UINT32, la["full_attention_interval"])
    w.add(f"{arch}.attention.layer_norm_rms_epsilon", T_FLOAT32, 1e-6)
    add_tokenizer(w, vocab)

    def quantized(name, rows, cols):  # weight [rows = out, cols = in]; GGUF dims innermost first
        kind = Q4_K if args.quant == "q4_k" and cols % 256 == 0 else Q4_0
        data = random_q4_k(rng, rows, cols) if kind == Q4_K else random_q4_0(rng, rows, cols)
        w.tensor(name, [cols, rows], kind, data)

    def vector(name, size, value=None):
        data = np.full(size, value, dtype="<f4") if value is not None else rng.normal(0, 0.02, size).astype("<f4")
        w.tensor(name, [size], F32, data)

    if arch == "qwen2":
        w.tensor("token_embd.weight", [hidden, vocab], F16, rng.normal(0, 0.02, size=vocab * hidden).astype("<f2"))
        vector("output_norm.weight", hidden, 1.0)
        q_out, kv_out = heads * head_dim, kv_heads * head_dim
        for layer in range(layers):
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
    else:
        write_qwen35_tensors(w, rng, quantized, vector, hidden, inter, heads, kv_heads, head_dim, vocab, layers)
    w.write(args.out)
    print(f"wrote {args.out}: {len(w.tensors)} tensors, {args.shape}, {args.quant}", file=sys.stderr)


def write_qwen35_tensors(w, rng, quantized, vector, hidden, inter, heads, kv_heads, head_dim, vocab, layers):
    la = QWEN35_LINEAR
    key_dim = la["key_heads"] * la["head_dim"]  # 2048
    value_dim = la["value_heads"] * la["head_dim"]  # 2048
    conv_dim = 2 * key_dim + value_dim  # 6144: q, k, v channels
    amplitude = np.sqrt(3.0 / hidden)  # quanteval's synthetic 16-bit projections: unit-variance outputs

    def f16_matrix(name, rows, cols):  # kept 16-bit in quanteval: F16 here
        data = rng.uniform(-amplitude, amplitude, size=rows * cols).astype("<f2")
        w.tensor(name, [cols, rows], F16, data)

    def f32_values(name, dims, values):
        w.tensor(name, dims, F32, np.asarray(values, dtype="<f4").reshape(-1))

    embedding = rng.standard_normal(size=vocab * hidden, dtype=np.float32)
    embedding *= 0.02
    w.tensor("token_embd.weight", [hidden, vocab], F16, embedding.astype("<f2"))
    del embedding
    vector("output_norm.weight", hidden, 1.0)
    for layer in range(layers):
        p = f"blk.{layer}."
        vector(p + "attn_norm.weight", hidden, 1.0)
        if (layer + 1) % la["full_attention_interval"] == 0:
            # Gated full attention (no biases): q and its output gate in one projection.
            quantized(p + "attn_q.weight", 2 * heads * head_dim, hidden)
            quantized(p + "attn_k.weight", kv_heads * head_dim, hidden)
            quantized(p + "attn_v.weight", kv_heads * head_dim, hidden)
            quantized(p + "attn_output.weight", hidden, heads * head_dim)
            vector(p + "attn_q_norm.weight", head_dim, 1.0)
            vector(p + "attn_k_norm.weight", head_dim, 1.0)
        else:
            # Gated DeltaNet.
            quantized(p + "attn_qkv.weight", conv_dim, hidden)
            quantized(p + "attn_gate.weight", value_dim, hidden)
            f16_matrix(p + "ssm_beta.weight", la["value_heads"], hidden)
            f16_matrix(p + "ssm_alpha.weight", la["value_heads"], hidden)
            # Depthwise conv kernel, [conv_dim][taps] (GGUF dims: taps innermost).
            f32_values(p + "ssm_conv1d.weight", [la["conv_kernel"], conv_dim],
                       rng.uniform(-0.5, 0.5, size=conv_dim * la["conv_kernel"]))
            f32_values(p + "ssm_dt.bias", [la["value_heads"]], rng.uniform(0.0, 1.0, size=la["value_heads"]))
            f32_values(p + "ssm_a", [la["value_heads"]], -np.exp(rng.uniform(0.0, 1.0, size=la["value_heads"])))
            vector(p + "ssm_norm.weight", la["head_dim"], 1.0)
            quantized(p + "ssm_out.weight", hidden, value_dim)
        vector(p + "post_attention_norm.weight", hidden, 1.0)
        quantized(p + "ffn_gate.weight", inter, hidden)
        quantized(p + "ffn_up.weight", inter, hidden)
        quantized(p + "ffn_down.weight", hidden, inter)


if __name__ == "__main__":
    main()
