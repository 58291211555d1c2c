/**
 * The pretraining stage of the embedded world: a fresh tiny Llama learns the world's corpus
 * (`data/corpus.jsonl`) with the next-token NLL on every token after BOS (EOS included), on the
 * same training loop as SFT (`runLoop`: cosine schedule, logging steps, held-out NLL, checkpoints)
 * and saved in HF layout. This is how `data/base/` was made.
 *
 * @module
 */

import type { Backend } from "../backend/mod.ts";
import {
  fingerprintDataset,
  loadSftDataset,
  loadTokenizer,
  type SequenceExample,
  tokenizeSft,
} from "../data/mod.ts";
import type { FileStore } from "../io/fs.ts";
import { joinPath } from "../io/fs.ts";
import { configFromHf } from "../model/config.ts";
import { initWeights } from "../model/init.ts";
import { LlamaModel } from "../model/llama.ts";
import { DeviceOptimizer } from "../train/optimizer.ts";
import { Trainer } from "../train/trainer.ts";
import { collateSft } from "../data/mod.ts";
import { runLoop } from "./loop.ts";
import type { StageResult } from "./manifest.ts";
import { sequenceLoss } from "./sft.ts";
import { openStage, skippedTraining, type StageHooks } from "./stage.ts";

/** Options of {@link runPretrain}. */
export interface PretrainOptions {
  /** Corpus: JSONL of `{"text": ...}` rows. */
  data: string;
  /** Folder with tokenizer.json (copied into the model folder). */
  tokenizer: string;
  outputDir: string;
  maxSteps: number;
  learningRate: number;
  warmupSteps: number;
  batchSize: number;
  weightDecay: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  loggingSteps: number;
  evalSteps: number;
  /** Seed of the initial weights, the held-out split and the batch order. */
  seed: number;
  /** Redo even when the model is up to date. @default false */
  force?: boolean;
  /** Clear another run's outputs from outputDir instead of refusing. @default false */
  overwriteOutputDir?: boolean;
}

/** Held-out fraction of the corpus and the longest sequence, fixed for the world. */
const HELD_OUT = 0.05, MAX_LENGTH = 64;

/** Shannon entropy (nats) of the predicted tokens' unigram distribution: the loss to beat. */
export function unigramEntropy(examples: readonly SequenceExample[]): number {
  const counts = new Map<number, number>();
  let total = 0;
  for (const e of examples) {
    for (const id of e.completionIds) counts.set(id, (counts.get(id) ?? 0) + 1), total++;
  }
  let h = 0;
  for (const c of counts.values()) h -= (c / total) * Math.log(c / total);
  return h;
}

/** Pretrains the world's base model; returns the metrics rows (eval_loss rows included). */
export async function runPretrain(
  store: FileStore,
  backend: Backend,
  o: PretrainOptions,
  hooks: StageHooks = {},
): Promise<StageResult & { results?: Record<string, number> }> {
  const tokenizer = await loadTokenizer(store, o.tokenizer);
  const load = (split: string) =>
    loadSftDataset(store, o.data, { testFraction: HELD_OUT, seed: o.seed, split });
  const [trainSet, evalSet] = [await load("train"), await load("test")];
  if (trainSet.format !== "text") {
    throw new RangeError(`${o.data} must hold {"text"} rows, found ${trainSet.format}`);
  }
  const tokenOptions = { maxLength: MAX_LENGTH };
  const train = tokenizeSft(trainSet.rows, tokenizer, tokenOptions).examples;
  const held = tokenizeSft(evalSet.rows, tokenizer, tokenOptions).examples;
  const longest = Math.max(
    ...[...train, ...held].map((e) => e.promptIds.length + e.completionIds.length),
  );
  const config = configFromHf({
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: tokenizer.vocabSize,
    hidden_size: o.hiddenSize,
    intermediate_size: o.intermediateSize,
    num_hidden_layers: o.numLayers,
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
  const { force: _force, overwriteOutputDir: _overwrite, outputDir, ...recorded } = o;
  const stage = await openStage(store, {
    stage: "pretrain",
    manifestPath: joinPath(outputDir, "manifest.json"),
    options: {
      ...recorded,
      maxLength: MAX_LENGTH,
      schedule: "cosine",
      heldOutFraction: HELD_OUT,
    },
    inputs: { data: await fingerprintDataset(trainSet, tokenizer, tokenOptions) },
    adapter: backend.adapterName,
    outputs: [joinPath(outputDir, "model.safetensors")],
    force: o.force,
    outputDir,
    overwrite: o.overwriteOutputDir,
    log: hooks.log,
  });
  if (stage.upToDate) return await skippedTraining(store, outputDir);
  try {
    const model = new LlamaModel(backend, config, { maxBatch: o.batchSize, maxSeqLen: longest });
    model.params.writeAll(initWeights(model.layout, { seed: o.seed }));
    const optimizer = new DeviceOptimizer(backend, model.layout, {
      lr: o.learningRate,
      schedule: "cosine",
      warmupSteps: o.warmupSteps,
      totalSteps: o.maxSteps,
      weightDecay: o.weightDecay,
    });
    const entropy = unigramEntropy(train);
    hooks.log?.(
      `${model.layout.total} parameters; ${train.length} train / ${held.length} held-out ` +
        `sequences (T <= ${longest}); unigram entropy ${entropy.toFixed(3)} nats`,
    );
    await store.mkdirp(outputDir);
    const start = performance.now();
    const rows = await runLoop({
      store,
      outputDir,
      model,
      optimizer,
      trainer: new Trainer(model, optimizer, { kind: "nll" }),
      examples: train.length,
      options: {
        batchSize: o.batchSize,
        gradientAccumulationSteps: 1,
        maxSteps: o.maxSteps,
        numTrainEpochs: 1,
        loggingSteps: o.loggingSteps,
        evalSteps: o.evalSteps,
        saveSteps: 0,
        seed: o.seed,
        dropLast: true,
        evalOnStart: true,
        gradientCheckpointing: false,
      },
      tokenizerFrom: o.tokenizer,
      report: false,
      runFingerprint: stage.manifest.stage_fingerprint,
    }, {
      microBatch: (indices) => ({
        batch: collateSft(indices.map((i) => train[i]), { padTokenId: 0 }),
      }),
      evaluate: async () => ({ loss: await sequenceLoss(model, held, 0, o.batchSize) }),
      ...hooks,
    });
    const last = rows.findLast((r) => "loss" in r)!;
    const results = {
      loss: last.loss,
      eval_loss: rows.at(-1)!.eval_loss,
      unigram_entropy: entropy,
      steps: o.maxSteps,
      seconds: (performance.now() - start) / 1000,
      parameters: model.layout.total,
    };
    await stage.finish(results);
    return { skipped: false, rows, results };
  } finally {
    await stage.release();
  }
}
