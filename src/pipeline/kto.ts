/**
 * The KTO stage (TRL's KTOTrainer): the policy trains on unpaired examples (`prompt`, `completion`,
 * boolean `label`) against cached reference log-probs. KTO's reference point z0 is a KL estimate
 * from mismatched pairs (prompt i with completion i+1 in dataset order, the last wrapping to the
 * first), so the precompute caches both (KTO_COLUMNS) and training never loads the reference.
 * Without `refCache` the cache goes to `<outputDir>/ref_cache.bin` (a missing `refCache` is
 * built); the reference is `refModel`, else the starting policy.
 *
 * @module
 */

import type { Backend, KtoLossSpec } from "../backend/mod.ts";
import { collateSequences } from "../data/mod.ts";
import type { FileStore } from "../io/fs.ts";
import { joinPath } from "../io/fs.ts";
import { frozenDtypeOf, modelFingerprint, readModelFolder } from "../model/model_folder.ts";
import { adapterRecord, trainedOutputs, trainingPolicy } from "./peft.ts";
import { ktoWeightWarning, resolveKtoSpec } from "../backend/kto_loss.ts";
import { evaluateUnpaired } from "./kto_eval.ts";
import { DeviceOptimizer } from "../train/optimizer.ts";
import { Trainer } from "../train/trainer.ts";
import { logReports, longestPair, trainEvalSplits } from "../data/prepare.ts";
import { openStage, skippedTraining, type StageHooks } from "./stage.ts";
import { batchLayout, loopDefaults, runLoop, totalSteps, type TrainStageOptions } from "./loop.ts";
import { fingerprintedOptions, type StageResult } from "./manifest.ts";
import { assertCacheFits } from "../cache/identity.ts";
import { assertRunFits } from "./memory.ts";
import { ktoColumn, mismatchedPairs, prepareUnpaired, runKtoPrecompute } from "./kto_cache.ts";

/** Options of {@link runKto} (TRL's KTOConfig names). */
export interface KtoOptions extends Partial<KtoLossSpec>, TrainStageOptions {
  /** KTO reference cache: read when it exists and fits, built there otherwise. */
  refCache?: string;
  /** The reference model for the cache. @default model */
  refModel?: string;
}

/** Trains KTO; returns the metrics rows (the last is the final eval when there is one). */
export async function runKto(
  store: FileStore,
  backend: Backend,
  options: KtoOptions,
  hooks: StageHooks = {},
): Promise<StageResult> {
  const spec = resolveKtoSpec(options);
  const loop = loopDefaults(options.loop);
  if (spec.lossType === "kto" && loop.batchSize <= 1) {
    throw new RangeError(
      "KTO with batch size 1: the KL term would equal the implied reward; use --batch-size >= 2",
    );
  }
  const { train: trainSpec, eval: evalSpec } = trainEvalSplits(
    options.data,
    options.evalData,
    options.evalFraction,
  );
  const { tokenizer, prepared } = await prepareUnpaired(
    store,
    options.model,
    trainSpec,
    evalSpec,
    options.tokenOptions,
  );
  const [train, evalSplit] = prepared.sections;
  logReports(prepared.sections, hooks.log);
  const desirable = train.examples.filter((e) => e.label).length;
  const warning = ktoWeightWarning(desirable, train.examples.length - desirable, spec);
  if (warning) hooks.log?.(`warning: ${warning}`);

  const cachePath = options.refCache ?? joinPath(options.outputDir, "ref_cache.bin");
  const { cache } = await runKtoPrecompute(store, backend, {
    model: options.refModel ?? options.model,
    prepared,
    padTokenId: tokenizer.padTokenId,
    output: cachePath,
    force: options.force,
    adapter: options.refModel ? undefined : options.peft?.adapter,
    maxMemory: options.maxMemory,
    frozenDtype: options.frozenDtype,
  }, hooks);
  assertCacheFits(cache.header, prepared, cachePath);

  const loaded = await readModelFolder(store, options.model);
  const { config, rawConfig, weights } = loaded;
  // Under --use-peft the frozen base stays in the checkpoint's precision (auto).
  const frozenDtype = frozenDtypeOf(loaded, options.frozenDtype);
  const pairs = prepared.sections.map((s) => mismatchedPairs(s.examples));
  const ktoSeqLen = longestPair(pairs.flat());
  const { model, adapter, save } = await trainingPolicy(store, backend, {
    config,
    weights,
    source: options.model,
    peft: options.peft,
    modelOptions: {
      maxBatch: loop.batchSize,
      maxSeqLen: ktoSeqLen,
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
          seqLen: ktoSeqLen,
          train: true,
          gradientCheckpointing: loop.gradientCheckpointing,
          lora,
          frozenDtype,
        },
        options.maxMemory,
        { rowsPerExample: 1, gradientCheckpointing: true },
        "kto",
      ),
  });
  const total = totalSteps(train.examples.length, loop);
  const optimizer = new DeviceOptimizer(backend, model.trainable.layout, {
    ...options.optimizer,
    totalSteps: total,
  });
  const trainer = new Trainer(model, optimizer, { kind: "kto", spec }, undefined, loop.seed);
  const lora = adapterRecord(adapter);
  const trainRef = ktoColumn(cache, "train", cachePath);
  const padTokenId = tokenizer.padTokenId;

  const manifestPath = joinPath(options.outputDir, "manifest.json");
  await store.mkdirp(options.outputDir);
  const stage = await openStage(store, {
    stage: "kto",
    manifestPath,
    options: {
      ...fingerprintedOptions(options),
      ...lora.options,
      loss: spec,
      loop,
      optimizer: optimizer.options,
    },
    inputs: {
      policy: await modelFingerprint(config, weights),
      ...lora.inputs,
      train_data: train.fingerprint,
      ...(evalSplit ? { eval_data: evalSplit.fingerprint } : {}),
      reference: cache.header.reference_fingerprint,
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
    manifest.sources = {
      policy: options.model,
      reference: cache.header.reference_source ?? "",
      reference_cache: cachePath,
    };
    manifest.datasets = Object.fromEntries(prepared.sections.map((s) => [s.name, s.report]));

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
        const part = indices.map((i) => pairs[0][i]);
        const B = part.length;
        const rows = (pick: "chosenIds" | "rejectedIds") =>
          collateSequences(part.map((p) => ({ promptIds: p.promptIds, completionIds: p[pick] })), {
            padTokenId,
          });
        const batch = rows("chosenIds"), kl = rows("rejectedIds");
        const referenceLogps = new Float64Array(2 * B);
        indices.forEach((i, j) => [referenceLogps[j], referenceLogps[B + j]] = trainRef(i));
        return {
          batch,
          klBatch: kl,
          referenceLogps,
          labels: indices.map((i) => (train.examples[i].label ? 1 : 0)),
        };
      },
      evaluate: evalSplit
        ? () => {
          const evalRef = ktoColumn(cache, "eval", cachePath);
          return evaluateUnpaired(model, pairs[1], evalSplit.examples, padTokenId, loop.batchSize, {
            spec,
            reference: evalRef,
          });
        }
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
