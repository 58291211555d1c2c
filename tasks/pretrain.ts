/**
 * `deno task pretrain`: pretrains a fresh tiny Llama on the world's corpus (`data/corpus.jsonl`)
 * with the next-token NLL on every token after BOS (EOS included), and saves it in HF layout. This
 * is how `data/base/` was made; the tests never run it.
 *
 * Writes to `--output-dir`: config.json, model.safetensors (F32), the tokenizer files,
 * metrics.jsonl (one row per logging step: loss, grad_norm, learning_rate; `eval_loss` rows on
 * the held-out 5% of the corpus) and manifest.json.
 */

import { parseFlags, Progress, runMain, UsageError } from "./_cli.ts";
import { DenoFileStore } from "../src/io/deno_fs.ts";
import { joinPath } from "../src/io/fs.ts";
import { createBackend, type DeviceChoice } from "../src/pipeline/device.ts";
import { configFromHf } from "../src/model/config.ts";
import { LlamaModel } from "../src/model/llama.ts";
import { initWeights } from "../src/model/init.ts";
import { saveModel } from "../src/model/model_folder.ts";
import { DeviceOptimizer } from "../src/train/optimizer.ts";
import { Trainer } from "../src/train/trainer.ts";
import {
  BatchSampler,
  collateSft,
  fingerprintDataset,
  loadSftDataset,
  loadTokenizer,
  type SequenceExample,
  tokenizeSft,
} from "../src/data/mod.ts";
import { finishManifest, startManifest, writeManifest } from "../src/pipeline/manifest.ts";

const flags = parseFlags(
  "pretrain",
  "Pretrains a fresh tiny Llama on a text corpus (NLL on all tokens) and saves it in HF layout.",
  {
    data: { type: "string", default: "data/corpus.jsonl", help: "corpus (JSONL of {text})" },
    tokenizer: { type: "string", default: "data", help: "folder with tokenizer.json" },
    "output-dir": { type: "string", default: "data/base", help: "where the model is saved" },
    "max-steps": { type: "number", default: 1000, help: "optimizer steps" },
    "learning-rate": { type: "number", default: 3e-3, aliases: ["lr"], help: "peak AdamW rate" },
    "warmup-steps": { type: "number", default: 50, help: "linear warmup steps" },
    "batch-size": {
      type: "number",
      default: 32,
      aliases: ["per-device-train-batch-size"],
      help: "sequences per step",
    },
    "weight-decay": { type: "number", default: 0.01, help: "AdamW decoupled weight decay" },
    "hidden-size": { type: "number", default: 128, help: "model width" },
    "intermediate-size": { type: "number", default: 344, help: "MLP width" },
    "num-layers": { type: "number", default: 2, help: "decoder layers" },
    "logging-steps": { type: "number", default: 25, help: "steps between metrics rows" },
    "eval-steps": { type: "number", default: 100, help: "steps between held-out losses" },
    seed: { type: "number", default: 0, help: "seed of the initial weights and batch order" },
    device: {
      type: "string",
      default: "auto",
      choices: ["auto", "webgpu", "cpu"],
      help: "backend",
    },
    json: { type: "boolean", default: false, help: "print the final metrics as JSON on stdout" },
  },
);

const log = (s: string) => console.error(s);

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new UsageError(`--${name}: expected a positive integer, got ${value}`);
  }
  return value;
}

/** Shannon entropy (nats) of the predicted tokens' unigram distribution: the loss to beat. */
function unigramEntropy(examples: readonly SequenceExample[]): number {
  const counts = new Map<number, number>();
  let total = 0;
  for (const e of examples) {
    for (const id of e.completionIds) counts.set(id, (counts.get(id) ?? 0) + 1), total++;
  }
  let h = 0;
  for (const c of counts.values()) h -= (c / total) * Math.log(c / total);
  return h;
}

await runMain(async () => {
  const maxSteps = positiveInt("max-steps", Number(flags.maxSteps));
  const batchSize = positiveInt("batch-size", Number(flags.batchSize));
  const loggingSteps = positiveInt("logging-steps", Number(flags.loggingSteps));
  const evalSteps = positiveInt("eval-steps", Number(flags.evalSteps));
  const seed = Number(flags.seed);
  const outputDir = String(flags.outputDir);
  const store = new DenoFileStore();

  const tokenizer = await loadTokenizer(store, String(flags.tokenizer));
  const load = (split: string) =>
    loadSftDataset(store, String(flags.data), { testFraction: 0.05, seed, split });
  const [trainSet, evalSet] = [await load("train"), await load("test")];
  if (trainSet.format !== "text") {
    throw new UsageError(`--data: ${flags.data} must hold {"text"} rows, found ${trainSet.format}`);
  }
  const tokenOptions = { maxLength: 64 };
  const train = tokenizeSft(trainSet.rows, tokenizer, tokenOptions).examples;
  const held = tokenizeSft(evalSet.rows, tokenizer, tokenOptions).examples;
  const longest = Math.max(
    ...[...train, ...held].map((e) => e.promptIds.length + e.completionIds.length),
  );

  const config = configFromHf({
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: tokenizer.vocabSize,
    hidden_size: Number(flags.hiddenSize),
    intermediate_size: Number(flags.intermediateSize),
    num_hidden_layers: Number(flags.numLayers),
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    hidden_act: "silu",
    max_position_embeddings: 64,
    bos_token_id: tokenizer.bosTokenId,
    eos_token_id: tokenizer.eosTokenId,
    pad_token_id: tokenizer.padTokenId,
  });
  const backend = await createBackend(String(flags.device) as DeviceChoice, { warn: log });
  const model = new LlamaModel(backend, config, { maxBatch: batchSize, maxSeqLen: longest });
  model.params.writeAll(initWeights(model.layout, { seed }));
  const optimizer = new DeviceOptimizer(backend, model.layout, {
    lr: Number(flags.learningRate),
    schedule: "cosine",
    warmupSteps: Number(flags.warmupSteps),
    totalSteps: maxSteps,
    weightDecay: Number(flags.weightDecay),
  });
  const trainer = new Trainer(model, optimizer, { kind: "nll" });
  const sampler = new BatchSampler(train.length, { batchSize, seed, dropLast: true });
  const entropy = unigramEntropy(train);
  log(
    `adapter: ${backend.adapterName}; ${model.layout.total} parameters; ${train.length} train / ` +
      `${held.length} held-out sequences (T <= ${longest}); unigram entropy ${
        entropy.toFixed(3)
      } nats`,
  );

  const options = {
    data: flags.data,
    tokenizer: flags.tokenizer,
    maxSteps,
    learningRate: flags.learningRate,
    warmupSteps: flags.warmupSteps,
    batchSize,
    weightDecay: flags.weightDecay,
    hiddenSize: flags.hiddenSize,
    intermediateSize: flags.intermediateSize,
    numLayers: flags.numLayers,
    seed,
    maxLength: tokenOptions.maxLength,
    schedule: "cosine",
    heldOutFraction: 0.05,
  };
  const manifest = await startManifest("pretrain", options, {
    data: await fingerprintDataset(trainSet, tokenizer, tokenOptions),
  }, backend.adapterName);
  await store.mkdirp(outputDir);
  const manifestPath = joinPath(outputDir, "manifest.json");
  await writeManifest(store, manifestPath, manifest);

  /** Mean per-token NLL of the held-out sequences (forward only, one readback per batch). */
  const evalLoss = async () => {
    let nll = 0, tokens = 0;
    for (let start = 0; start < held.length; start += batchSize) {
      const batch = collateSft(held.slice(start, start + batchSize), { padTokenId: 0 });
      model.setBatch(batch);
      model.forward();
      const logps = await backend.read(model.acts.seqLogps);
      for (let b = 0; b < batch.rows; b++) nll -= logps[b], tokens += batch.tokenCounts[b];
    }
    return nll / tokens;
  };

  const rows: Array<Record<string, number>> = [];
  const metricsLines: string[] = [];
  const record = (row: Record<string, number>) => {
    rows.push(row);
    metricsLines.push(JSON.stringify(row));
  };
  const start = performance.now();
  const progress = new Progress("pretrain", maxSteps);
  record({ step: 0, eval_loss: await evalLoss(), unigram_entropy: entropy });
  let last: Record<string, number> = {};
  let heldOut = NaN;
  for (let step = 0; step < maxSteps; step++) {
    const examples = sampler.batch(step).map((i) => train[i]);
    const batch = collateSft(examples, { padTokenId: 0 });
    trainer.step([{ batch }]);
    const done = step + 1;
    if (done % loggingSteps === 0 || done === maxSteps) {
      const metrics = await trainer.readMetrics();
      last = {
        step: done,
        epoch: done / sampler.batchesPerEpoch,
        ...metrics,
        seconds: (performance.now() - start) / 1000,
      };
      record(last);
    }
    if (done % evalSteps === 0 || done === maxSteps) {
      heldOut = await evalLoss();
      record({ step: done, eval_loss: heldOut });
    }
    progress.update(done, `loss ${last.loss?.toFixed(3) ?? "-"} held-out ${heldOut.toFixed(3)}`);
  }
  progress.done(`loss ${last.loss.toFixed(3)} held-out ${heldOut.toFixed(3)}`);

  await saveModel(store, outputDir, model, { tokenizerFrom: String(flags.tokenizer) });
  await store.writeFileAtomic(
    joinPath(outputDir, "metrics.jsonl"),
    new TextEncoder().encode(metricsLines.join("\n") + "\n"),
  );
  const seconds = (performance.now() - start) / 1000;
  const results = {
    loss: last.loss,
    eval_loss: heldOut,
    unigram_entropy: entropy,
    steps: maxSteps,
    seconds,
    parameters: model.layout.total,
  };
  await finishManifest(store, manifestPath, manifest, results);
  log(
    `saved ${outputDir} (${seconds.toFixed(0)} s): loss ${last.loss.toFixed(4)}, ` +
      `held-out ${heldOut.toFixed(4)} nats/token (unigram ${entropy.toFixed(3)})`,
  );
  if (flags.json) console.log(JSON.stringify({ outputDir, ...results }));
  backend.destroy();
});
