/**
 * `deno task generate --model DIR --prompts FILE`: samples a completion for every prompt with
 * the model's KV-cache decoder on the device (src/eval/sample.ts). Completions go to stderr as
 * text; `--json` prints one JSON object per prompt on stdout: {prompt, completion, tokens,
 * finish_reason, logps}.
 *
 * The prompts file is JSON lines with a "prompt" string per line (other fields ignored), or, for
 * any other extension, plain text with one prompt per non-empty line.
 */

import { parseFlags, Progress, runMain, UsageError } from "./_cli.ts";
import { GpuBackend } from "../src/gpu/backend.ts";
import { CpuBackend } from "../src/cpu/backend.ts";
import { hasWebGpu } from "../src/gpu/device.ts";
import type { Backend } from "../src/backend/mod.ts";
import { DenoFileStore } from "../src/io/deno_fs.ts";
import { loadModel } from "../src/model/model_folder.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import { readPrompts } from "../src/data/prompts.ts";
import { generate } from "../src/eval/sample.ts";

const flags = parseFlags("generate", "Samples completions of prompts with a model folder.", {
  model: { type: "string", help: "model folder (config.json, model.safetensors, tokenizer files)" },
  prompts: { type: "string", help: 'prompts: JSONL with a "prompt" field, or text, one per line' },
  "max-new-tokens": { type: "number", default: 64, help: "tokens generated per prompt at most" },
  temperature: { type: "number", default: 1, help: "sampling temperature; 0 = greedy" },
  "top-k": { type: "number", default: 0, help: "keep the k most likely tokens; 0 = off" },
  "top-p": { type: "number", default: 1, help: "nucleus sampling mass; 1 = off" },
  seed: { type: "number", default: 0, help: "seed of the sampling noise" },
  "batch-size": { type: "number", default: 64, help: "prompts decoded at once" },
  chat: {
    type: "boolean",
    default: false,
    help: "wrap each prompt as a user message with the chat template",
  },
  device: { type: "string", default: "webgpu", choices: ["webgpu", "cpu"], help: "backend" },
  json: { type: "boolean", default: false, help: "print JSON lines on stdout" },
});

const log = (s: string) => console.error(s);

async function newBackend(): Promise<Backend> {
  if (flags.device === "cpu") return new CpuBackend("f32");
  if (!await hasWebGpu()) {
    throw new UsageError(
      "no WebGPU adapter: install mesa-vulkan-drivers (software) or a GPU driver, or pass --device cpu",
    );
  }
  return await GpuBackend.create();
}

await runMain(async () => {
  if (!flags.model) throw new UsageError("--model is required: a model folder");
  if (!flags.prompts) throw new UsageError("--prompts is required: a JSONL or text file");
  const maxNewTokens = Number(flags.maxNewTokens), batchSize = Number(flags.batchSize);
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) {
    throw new UsageError(`--max-new-tokens: expected an integer >= 0, got ${maxNewTokens}`);
  }
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new UsageError(`--batch-size: expected an integer >= 1, got ${batchSize}`);
  }
  const temperature = Number(flags.temperature), topK = Number(flags.topK);
  const topP = Number(flags.topP), seed = Number(flags.seed);
  if (!(temperature >= 0)) throw new UsageError(`--temperature: expected >= 0, got ${temperature}`);
  if (!Number.isInteger(topK) || topK < 0) {
    throw new UsageError(`--top-k: expected an integer >= 0, got ${topK}`);
  }
  if (!(topP > 0 && topP <= 1)) throw new UsageError(`--top-p: expected a number in (0, 1]`);
  if (!Number.isInteger(seed)) throw new UsageError(`--seed: expected an integer, got ${seed}`);

  const dir = String(flags.model);
  const store = new DenoFileStore();
  const texts = await readPrompts(store, String(flags.prompts));
  const tokenizer = await loadTokenizer(store, dir);
  const backend = await newBackend();
  log(`adapter: ${backend.adapterName}`);
  const { model } = await loadModel(store, dir, backend, { maxBatch: 1, maxSeqLen: 1 });
  const prompts = texts.map((text) => {
    const rendered = flags.chat
      ? tokenizer.applyChatTemplate([{ role: "user", content: text }], {
        addGenerationPrompt: true,
      })
      : text;
    const ids = tokenizer.encode(rendered);
    // The chat template writes its own BOS; a plain prompt gets one where the tokenizer adds it.
    const bos = !flags.chat && tokenizer.addsBos && tokenizer.bosTokenId !== null;
    return bos ? [tokenizer.bosTokenId!, ...ids] : ids;
  });
  const empty = prompts.findIndex((p) => p.length === 0);
  if (empty >= 0) throw new UsageError(`prompt ${empty + 1} encodes to no tokens`);
  const configEos = model.config.eosTokenId === null ? [] : [model.config.eosTokenId].flat();
  const eosTokenIds = [...new Set([...configEos, tokenizer.eosTokenId ?? configEos[0]])]
    .filter((id): id is number => id !== undefined);

  const progress = new Progress("generate", prompts.length);
  const start = performance.now();
  const outputs = await generate(model, prompts, {
    maxNewTokens,
    temperature,
    topK,
    topP,
    seed,
    batchSize,
    eosTokenIds,
    padTokenId: tokenizer.padTokenId,
    onProgress: (done, total) => done < total && progress.update(done),
  });
  const seconds = (performance.now() - start) / 1000;
  const generated = outputs.reduce((s, o) => s + o.tokens.length, 0);
  progress.done(`${generated} tokens, ${(generated / seconds).toFixed(1)} tokens/s`);
  outputs.forEach((o, i) => {
    const body = o.finishReason === "eos" ? o.tokens.slice(0, -1) : o.tokens;
    const completion = tokenizer.decode(body);
    if (flags.json) {
      console.log(JSON.stringify({
        prompt: texts[i],
        completion,
        tokens: o.tokens,
        finish_reason: o.finishReason,
        logps: o.logps,
      }));
    } else log(`[${i + 1}] ${texts[i]} ⟶ ${completion}${o.finishReason === "eos" ? "" : " …"}`);
  });
  backend.destroy();
});
