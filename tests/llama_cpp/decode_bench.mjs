// llama.cpp's side of scripts/bench_decode.sh: load time, prefill and greedy decode speed of a GGUF
// model on the CPU (node-llama-cpp's prebuilt libllama, the CPU backend it picks for this machine),
// with llama.cpp's defaults, so its CPU repacking of Q4_0/Q4_K weights ("extra buffer types":
// CPU_REPACK, or AMX on CPUs with AMX) is on; whether it happened is read from llama.cpp's own load
// log (the model buffers other than CPU / CPU_Mapped).
//
//   node decode_bench.mjs --model M.gguf --ids 97,98,... [--tokens 64] [--reps 3] [--threads 2]
//                         [--warmup 1]
// Each repetition loads the model (timed: mmap, tensor upload, repacking), creates a context,
// evaluates the prompt ids as one batch and samples the first token greedily (prefill), then
// generates the remaining --tokens - 1 tokens one at a time (decode; end-of-generation tokens do
// not stop it), and frees the model. The --warmup repetitions run first and are not reported.
// Prints one JSON object: {load_s: [..], prefill_s: [..], decode_s: [..], prompt_tokens,
// decode_steps, generated_ids (of the last repetition), repack, repack_buffers, cpu_backend, ...}.
// The package is found in $GPTQ_NODE_LLAMA_CPP (the npm prefix of scripts/setup_llama_cpp.sh).
import path from "node:path";
import {pathToFileURL} from "node:url";

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const prefix = process.env.GPTQ_NODE_LLAMA_CPP;
if (!prefix) throw new Error("GPTQ_NODE_LLAMA_CPP is not set (run scripts/setup_llama_cpp.sh)");
if (!args.model || !args.ids) throw new Error("usage: decode_bench.mjs --model M.gguf --ids 1,2,3 [--tokens 64] [--reps 3] [--threads 2] [--warmup 1]");
const {getLlama} = await import(pathToFileURL(path.join(prefix, "node_modules/node-llama-cpp/dist/index.js")).href);

const ids = args.ids.split(",").map(Number);
const tokens = Number(args.tokens ?? 64);
const reps = Number(args.reps ?? 3);
const threads = Number(args.threads ?? 2);
const warmup = Number(args.warmup ?? 1);
if (!(tokens >= 1 && reps >= 1 && threads >= 1 && warmup >= 0) || ids.some((t) => !Number.isInteger(t)))
  throw new Error("bad --ids/--tokens/--reps/--threads/--warmup");

// llama.cpp's log, kept (not printed): the CPU backend loaded and the model buffers allocated.
const log = [];
const llama = await getLlama({
  gpu: false,
  build: "never",
  maxThreads: threads,
  logLevel: "debug",
  logger: (level, message) => log.push(String(message)),
});

const now = () => Number(process.hrtime.bigint()) / 1e9;
const result = {model: args.model, threads, prompt_tokens: ids.length, load_s: [], prefill_s: [], decode_s: []};
for (let r = 0; r < warmup + reps; ++r) {
  const logStart = log.length;
  let t = now();
  const model = await llama.loadModel({modelPath: args.model, gpuLayers: 0});
  const load = now() - t;
  const context = await model.createContext({
    contextSize: Math.max(64, ids.length + tokens + 16),
    batchSize: ids.length,
    sequences: 1,
    threads: {ideal: threads, min: threads},
  });
  const sequence = context.getSequence();
  const generated = [];
  let prefill = 0;
  t = now();
  for await (const tok of sequence.evaluate(ids, {temperature: 0, yieldEogToken: true})) {
    if (generated.length === 0) {
      prefill = now() - t;
      t = now();
    }
    generated.push(tok);
    if (generated.length === tokens) break;
  }
  const decode = now() - t;
  await context.dispose();
  await model.dispose();
  if (r === 0) {
    const loadLog = log.slice(logStart);
    // Weights in an extra buffer type (CPU_REPACK, or AMX where the CPU has it and the type has
    // AMX kernels) were repacked at load; CPU / CPU_Mapped buffers hold them as in the file.
    const buffers = loadLog.filter((l) => /model buffer size/.test(l)).map((l) => l.trim().replace(/\s+/g, " "));
    result.model_buffers = buffers;
    result.repack_buffers = buffers.filter((l) => !/\bCPU(_Mapped)? model buffer/.test(l));
    result.repack = result.repack_buffers.length > 0;
  }
  if (r < warmup) continue;
  result.load_s.push(load);
  result.prefill_s.push(prefill);
  result.decode_s.push(decode);
  result.decode_steps = generated.length - 1;
  result.generated_ids = generated;
}
// The CPU variant ggml picked for this machine (libggml-cpu-<variant>.so).
const backend = log.find((l) => /loaded CPU backend/.test(l));
result.cpu_backend = backend ? path.basename(backend.trim()) : null;
console.log(JSON.stringify(result));
process.exit(0);
