#!/usr/bin/env python3
"""Token-level divergence of two fixture models, computed independently of
quanteval from the transformers logits stored with the fixtures.

  divergence_reference.py MODEL_DIR BASELINE_DIR

Reads MODEL_DIR/reference_logits.safetensors (tensor `logits`, F32 [T, vocab])
and the same for BASELINE_DIR, and BASELINE_DIR/reference.json's input_ids.
For every row t: KL(P_baseline || P_model) in nats, whether the argmaxes
agree, delta p = p_model(next) - p_baseline(next) with next = input_ids[(t+1) % T],
and E_{P_baseline} |log p_baseline - log p_model| (the test's tolerance needs it).
Prints one JSON object. Standard library only: the file is parsed by hand.
"""
import array
import json
import math
import struct
import sys


def read_logits(path):
    with open(path, "rb") as handle:
        data = handle.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    entry = header["logits"]
    if entry["dtype"] != "F32":
        raise SystemExit(f"{path}: logits are {entry['dtype']}, expected F32")
    rows, vocab = entry["shape"]
    begin, end = entry["data_offsets"]
    values = array.array("f")
    values.frombytes(data[8 + header_len + begin:8 + header_len + end])
    if sys.byteorder != "little":
        values.byteswap()
    return [values[r * vocab:(r + 1) * vocab].tolist() for r in range(rows)]


def log_softmax(row):
    top = max(row)
    log_norm = top + math.log(math.fsum(math.exp(v - top) for v in row))
    return [v - log_norm for v in row]


def argmax(row):
    return max(range(len(row)), key=lambda i: (row[i], -i))  # first index of the max


def main():
    model_dir, baseline_dir = sys.argv[1], sys.argv[2]
    model = read_logits(f"{model_dir}/reference_logits.safetensors")
    baseline = read_logits(f"{baseline_dir}/reference_logits.safetensors")
    with open(f"{baseline_dir}/reference.json") as handle:
        ids = json.load(handle)["input_ids"]
    if len(model) != len(baseline) or len(baseline) != len(ids):
        raise SystemExit("row counts differ")
    out = {"kl": [], "same_top1": [], "delta_p": [], "mean_abs_log_ratio": []}
    for t, (row_a, row_b) in enumerate(zip(model, baseline)):
        log_a, log_b = log_softmax(row_a), log_softmax(row_b)
        p_b = [math.exp(v) for v in log_b]
        out["kl"].append(math.fsum(p * (lb - la) for p, lb, la in zip(p_b, log_b, log_a)))
        out["mean_abs_log_ratio"].append(math.fsum(p * abs(lb - la) for p, lb, la in zip(p_b, log_b, log_a)))
        out["same_top1"].append(argmax(row_a) == argmax(row_b))
        nxt = ids[(t + 1) % len(ids)]
        out["delta_p"].append(math.exp(log_a[nxt]) - math.exp(log_b[nxt]))
    out["mean_kl"] = math.fsum(out["kl"]) / len(out["kl"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
