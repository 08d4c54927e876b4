// Perplexity, KL divergence and next-token probabilities of GGUF models computed by llama.cpp
// (node-llama-cpp's prebuilt CPU libllama), on token ids given in a JSON file, with the windows
// `gptq eval` uses: non-overlapping windows of --seqlen tokens, each a fresh sequence (no BOS), the
// first token of a window predicting nothing.
//
//   node eval_gguf.mjs --model M.gguf (--ids ids.json | --text FILE) [--seqlen 256] [--max-windows 0]
//                      [--base BASE.gguf] [--probs-out FILE] [--ids-out FILE]
//   node eval_gguf.mjs --model M.gguf --tokenize strings.json
// --tokenize: prints {"tokens": [[ids of string 0], ...]}, llama.cpp's tokenization of each string
// of the JSON array (no BOS / EOS, special-token text not parsed), and exits.
// --text: tokenized whole by llama.cpp with the model's vocabulary (no BOS); --ids-out saves the ids.
// prints one JSON object: {ppl, nll, tokens, windows, [kld, top1]}; --probs-out writes the model's
// next-token probabilities of the first window as float32 [seqlen - 1, n_vocab].
// The package is found in $GPTQ_NODE_LLAMA_CPP (the npm prefix of scripts/setup_llama_cpp.sh).
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const prefix = process.env.GPTQ_NODE_LLAMA_CPP;
if (!prefix) throw new Error("GPTQ_NODE_LLAMA_CPP is not set (run scripts/setup_llama_cpp.sh)");
const {getLlama} = await import(pathToFileURL(path.join(prefix, "node_modules/node-llama-cpp/dist/index.js")).href);

const seqlen = Number(args.seqlen ?? 256);
const maxWindows = Number(args["max-windows"] ?? 0);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});

async function open(modelPath) {
  const model = await llama.loadModel({modelPath, gpuLayers: 0});
  const context = await model.createContext({contextSize: seqlen, batchSize: seqlen, sequences: 1});
  return {model, context, sequence: context.getSequence()};
}

// Dense next-token distributions of one window: Float64Array per position 0..seqlen-2.
async function windowProbs(m, tokens) {
  await m.sequence.clearHistory();
  const input = tokens.map((t, i) => (i < tokens.length - 1 ? [t, {generateNext: {probabilities: true}}] : t));
  const res = await m.sequence.controlledEvaluate(input);
  const out = [];
  for (let i = 0; i < tokens.length - 1; ++i) {
    const p = new Float64Array(m.vocab);
    for (const [tok, prob] of res[i].next.probabilities) p[tok] = prob;
    out.push(p);
  }
  return out;
}

const target = await open(args.model);
if (args.tokenize) {
  const strings = JSON.parse(fs.readFileSync(args.tokenize, "utf8"));
  console.log(JSON.stringify({tokens: strings.map((s) => Array.from(target.model.tokenize(s, false)))}));
  process.exit(0);
}
target.vocab = Number(target.model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length ?? 0) || target.model.tokens.length;
let ids;
if (args.text) ids = Array.from(target.model.tokenize(fs.readFileSync(args.text, "utf8"), false));
else {
  ids = JSON.parse(fs.readFileSync(args.ids, "utf8"));
  if (!Array.isArray(ids)) ids = ids.input_ids;
}
if (args["ids-out"]) fs.writeFileSync(args["ids-out"], JSON.stringify(ids));
let windows = Math.floor(ids.length / seqlen);
if (maxWindows > 0) windows = Math.min(windows, maxWindows);
if (windows < 1) throw new Error(`${ids.length} tokens make no window of ${seqlen}`);
let base = null;
if (args.base) {
  base = await open(args.base);
  base.vocab = target.vocab;
}

let nll = 0, count = 0, kl = 0, top1 = 0;
for (let w = 0; w < windows; ++w) {
  const tokens = ids.slice(w * seqlen, (w + 1) * seqlen);
  const pm = await windowProbs(target, tokens);
  if (w === 0 && args["probs-out"]) {
    const flat = new Float32Array(pm.length * target.vocab);
    pm.forEach((p, i) => flat.set(p, i * target.vocab));
    fs.writeFileSync(args["probs-out"], Buffer.from(flat.buffer));
  }
  const pb = base ? await windowProbs(base, tokens) : null;
  for (let i = 0; i < pm.length; ++i) {
    nll -= Math.log(Math.max(pm[i][tokens[i + 1]], 1e-300));
    ++count;
    if (pb) {
      let k = 0, am = 0, ab = 0;
      for (let v = 0; v < target.vocab; ++v) {
        if (pb[i][v] > 0) k += pb[i][v] * (Math.log(pb[i][v]) - Math.log(Math.max(pm[i][v], 1e-300)));
        if (pm[i][v] > pm[i][am]) am = v;
        if (pb[i][v] > pb[i][ab]) ab = v;
      }
      kl += k;
      top1 += am === ab ? 1 : 0;
    }
  }
}
const result = {ppl: Math.exp(nll / count), nll: nll / count, tokens: count, windows};
if (base) Object.assign(result, {kld: kl / count, top1: top1 / count});
console.log(JSON.stringify(result));
process.exit(0);
