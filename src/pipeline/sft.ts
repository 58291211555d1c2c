/**
 * The SFT stage: supervised fine-tuning on demonstrations with the prompt masked out of the loss
 * (TRL's completion_only_loss), the NLL averaged over the step's completion tokens.
 *
 * @module
 */

import type { Backend } from "../backend/mod.ts";
import { collateSft, loadTokenizer, type SequenceExample } from "../data/mod.ts";
import type { FileStore } from "../io/fs.ts";
import { joinPath } from "../io/fs.ts";
import { frozenDtypeOf, modelFingerprint, readModelFolder } from "../model/model_folder.ts";
import { checkTokenRange } from "../data/vocab_check.ts";
import type { LlamaModel } from "../model/llama.ts";
import { adapterRecord, trainedOutputs, trainingPolicy } from "./peft.ts";
import { DeviceOptimizer } from "../train/optimizer.ts";
import { Trainer } from "../train/trainer.ts";
import {
  logReports,
  longestSequence,
  prepareSftSplit,
  type TokenOptions,
  trainEvalSplits,
} from "../data/prepare.ts";
import { openStage, skippedTraining, type StageHooks } from "./stage.ts";
import { batchLayout, loopDefaults, runLoop, totalSteps, type TrainStageOptions } from "./loop.ts";
import { fingerprintedOptions, type StageResult } from "./manifest.ts";
import { assertRunFits } from "./memory.ts";

/** Options of {@link runSft}. */
export interface SftOptions extends TrainStageOptions {
  /** Options that change token ids; `completionOnlyLoss` masks the prompt out of the loss. */
  tokenOptions?: TokenOptions & { completionOnlyLoss?: boolean };
}

/** Mean completion-token NLL of a model over examples (forward only). */
export async function sequenceLoss(
  model: LlamaModel,
  examples: readonly SequenceExample[],
  padTokenId: number,
  batchSize: number,
): Promise<number> {
  let nll = 0, tokens = 0;
  for (let start = 0; start < examples.length; start += batchSize) {
    const part = examples.slice(start, start + batchSize);
    const batch = collateSft(part, { padTokenId });
    model.setBatch(batch);
    model.forward();
    const logps = await model.backend.read(model.acts.seqLogps);
    for (let i = 0; i < part.length; i++) {
      nll -= logps[i];
      tokens += batch.tokenCounts[i];
    }
  }
  return nll / Math.max(1, tokens);
}

/** Runs SFT; returns the metrics rows. */
export async function runSft(
  store: FileStore,
  backend: Backend,
  options: SftOptions,
  hooks: StageHooks = {},
): Promise<StageResult> {
  const tokenizer = await loadTokenizer(store, options.model);
  const { train: trainSpec, eval: evalSpec } = trainEvalSplits(
    options.data,
    options.evalData,
    options.evalFraction,
  );
  const tokenOptions = options.tokenOptions ?? {};
  const train = await prepareSftSplit(store, trainSpec, tokenizer, tokenOptions);
  const evalSplit = evalSpec
    ? await prepareSftSplit(store, evalSpec, tokenizer, tokenOptions)
    : undefined;
  logReports([
    { name: "train", ...train },
    ...(evalSplit ? [{ name: "eval", ...evalSplit }] : []),
  ], hooks.log);
  const loaded = await readModelFolder(store, options.model);
  const { config, rawConfig, weights } = loaded;
  const frozenDtype = frozenDtypeOf(loaded, options.frozenDtype);
  checkTokenRange(
    [...train.examples, ...evalSplit?.examples ?? []],
    config.vocabSize,
    options.model,
  );
  const loop = loopDefaults(options.loop);
  const maxSeqLen = longestSequence([...train.examples, ...(evalSplit?.examples ?? [])]);
  const { model, adapter, save } = await trainingPolicy(store, backend, {
    config,
    weights,
    source: options.model,
    peft: options.peft,
    modelOptions: {
      maxBatch: loop.batchSize,
      maxSeqLen,
      gradientCheckpointing: loop.gradientCheckpointing,
      frozenDtype,
    },
    seed: loop.seed,
    log: hooks.log,
    check: (lora) =>
      assertRunFits(
        backend,
        {
          config,
          rows: loop.batchSize,
          seqLen: maxSeqLen,
          train: true,
          gradientCheckpointing: loop.gradientCheckpointing,
          lora,
          frozenDtype,
        },
        options.maxMemory,
        { rowsPerExample: 1, gradientCheckpointing: true },
        "sft",
      ),
  });
  const optimizer = new DeviceOptimizer(backend, model.trainable.layout, {
    ...options.optimizer,
    totalSteps: totalSteps(train.examples.length, loop),
  });
  const trainer = new Trainer(model, optimizer, { kind: "nll" }, undefined, loop.seed);
  const lora = adapterRecord(adapter);
  const padTokenId = tokenizer.padTokenId;
  await store.mkdirp(options.outputDir);
  const manifestPath = joinPath(options.outputDir, "manifest.json");
  const stage = await openStage(store, {
    stage: "sft",
    manifestPath,
    options: {
      ...fingerprintedOptions(options),
      ...lora.options,
      loop,
      optimizer: optimizer.options,
    },
    inputs: {
      model: await modelFingerprint(config, weights),
      train_data: train.fingerprint,
      ...(evalSplit ? { eval_data: evalSplit.fingerprint } : {}),
      ...lora.inputs,
    },
    adapter: backend.adapterName,
    outputs: trainedOutputs(options.outputDir, options.peft),
    force: options.force,
    outputDir: options.outputDir,
    overwrite: options.overwriteOutputDir,
    log: hooks.log,
  });
  if (stage.upToDate) return await skippedTraining(store, options.outputDir);
  const { manifest } = stage;
  try {
    manifest.sources = { model: options.model };
    manifest.datasets = { train: train.report, ...(evalSplit ? { eval: evalSplit.report } : {}) };
    const rows = await runLoop({
      store,
      outputDir: options.outputDir,
      model,
      optimizer,
      trainer,
      examples: train.examples.length,
      options: loop,
      unit: "examples",
      tokenizerFrom: options.model,
      rawConfig,
      resume: options.resume,
      adapter: save,
      runFingerprint: manifest.stage_fingerprint,
    }, {
      microBatch: (indices) => {
        const part = indices.map((i) => train.examples[i]);
        return { batch: collateSft(part, { padTokenId }) };
      },
      evaluate: evalSplit
        ? async () => ({
          loss: await sequenceLoss(model, evalSplit.examples, padTokenId, loop.batchSize),
        })
        : undefined,
      ...hooks,
    });
    await stage.finish({
      final: rows.at(-1),
      device_bytes: backend.bytesByRole(),
      batches: batchLayout(train.examples.length, loop, "examples"),
    });
    return { skipped: false, rows };
  } finally {
    await stage.release();
  }
}
