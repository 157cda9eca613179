// Times llama.cpp (the prebuilt CPU build inside node-llama-cpp) on a GGUF through
// node-llama-cpp's API, the way tools/bench_decode times quanteval:
//   prefill P tokens   one fresh sequence evaluates P prompt tokens in one batch
//   decode, batch 1    16-token prompt, then N greedy tokens; median time per token
//   decode, batch B    B sequences in one context (llama.cpp's parallel sequences),
//                      each 16 prompt tokens then N greedy tokens together; median time
//                      of one step (token t of every sequence) -> B / step tokens/s
//
//   node bench_llamacpp.mjs MODEL.gguf --threads T [--prefill 128,512] [--decode-tokens N] [--batch B]
//                           [--vocab V]   (prompt ids stay below V; 151936 = qwen2.5, 248320 = qwen3.5)
//
// Everything else is node-llama-cpp's / llama.cpp's default (flash attention "auto", the
// repacked CPU weight layouts, its own threadpool).
// Prints one JSON object (tok/s per measurement, the CPU backend variant loaded).
// Run from a directory whose node_modules holds node-llama-cpp (tools/bench_llamacpp.sh).
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const modelPath = process.argv[2];
const threads = Number(option("threads", "2"));
const prefills = option("prefill", "128,512").split(",").filter(Boolean).map(Number);
const decodeTokens = Number(option("decode-tokens", "32"));
const batch = Number(option("batch", "16"));
const vocabulary = Number(option("vocab", "151936"));

const llama = await getLlama({ gpu: false, build: "never", maxThreads: threads, logLevel: LlamaLogLevel.warn });
const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });

// Deterministic prompt ids away from the special/byte tokens (as bench_decode's prompt).
const prompt = (length) => Array.from({ length }, (_, i) => 300 + ((i * 7919 + 13) % (vocabulary - 300)));
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const now = () => Number(process.hrtime.bigint()) / 1e9;

const result = { threads };
const maxPrefill = Math.max(16, ...prefills);
{
  const context = await model.createContext({
    contextSize: maxPrefill + 64, batchSize: maxPrefill, sequences: 1, threads,
  });
  const sequence = context.getSequence();
  // Warm-up: the first evaluation pays graph allocation and weight repacking.
  await sequence.evaluateWithoutGeneratingNewTokens(prompt(16));
  for (const p of prefills) {
    await sequence.clearHistory();
    const start = now();
    await sequence.evaluateWithoutGeneratingNewTokens(prompt(p));
    result[`prefill_${p}`] = p / (now() - start);
  }
  await sequence.clearHistory();
  await sequence.evaluateWithoutGeneratingNewTokens(prompt(16));
  const times = [];
  let last = now();
  let produced = 0;
  for await (const token of sequence.evaluate([42], { temperature: 0 })) {
    const t = now();
    times.push(t - last);
    last = t;
    if (++produced >= decodeTokens) break;
  }
  result.decode_1 = 1 / median(times.slice(1));  // the first includes the prompt's last token
  await context.dispose();
}
if (batch > 1) {
  const context = await model.createContext({
    contextSize: batch * (16 + decodeTokens + 32), batchSize: Math.max(512, batch * 16), sequences: batch, threads,
  });
  const sequences = Array.from({ length: batch }, () => context.getSequence());
  await Promise.all(sequences.map((s) => s.evaluateWithoutGeneratingNewTokens(prompt(16))));
  const stamps = sequences.map(() => []);
  await Promise.all(sequences.map(async (s, i) => {
    for await (const token of s.evaluate([42 + i], { temperature: 0 })) {
      stamps[i].push(now());
      if (stamps[i].length >= decodeTokens) break;
    }
  }));
  const steps = [];
  for (let t = 2; t < decodeTokens; ++t) {
    steps.push(Math.max(...stamps.map((s) => s[t])) - Math.max(...stamps.map((s) => s[t - 1])));
  }
  result[`decode_${batch}`] = batch / median(steps);
  await context.dispose();
}
// The loaded CPU backend's features (AVX512 = 1 only in the AVX-512 variants).
result.cpu_features = llama.systemInfo.trim();
await model.dispose();
console.log(JSON.stringify(result));
