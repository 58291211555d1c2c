/**
 * The DPO stage: trains the policy on preference pairs against reference log-probs read from the
 * cache, so the reference is never loaded. With `refModel` and no cache the reference runs live
 * (for comparison); with neither, the starting policy is the reference and its cache is computed
 * first into `<outputDir>/ref_cache.bin`. Reference-free losses (simpo, orpo, sft, or
 * `referenceFree`) read no reference at all: the precompute is skipped.
 *
 * @module
 */

import type { Backend, PreferenceLossSpec } from "../backend/mod.ts";
import { CacheError, type ReferenceCache } from "../cache/reference_cache.ts";
import {
  assertWinRates,
  collatePreference,
  collateWinRates,
  type PreferenceExample,
} from "../data/mod.ts";
import type { FileStore } from "../io/fs.ts";
import { joinPath } from "../io/fs.ts";
import { frozenDtypeOf, modelFingerprint, readModelFolder } from "../model/model_folder.ts";
import { checkTokenRange } from "../data/vocab_check.ts";
import { LlamaModel, type SequenceScorer } from "../model/llama.ts";
import {
  adapterRecord,
  loraReference,
  referenceFingerprint,
  trainedOutputs,
  trainingPolicy,
} from "./peft.ts";
import {
  needsReference,
  type PreferenceLossOptions,
  preferenceLossWith,
  preferenceMetrics,
  resolveLossSpec,
} from "../backend/losses.ts";
import { DeviceOptimizer } from "../train/optimizer.ts";
import { Trainer } from "../train/trainer.ts";
import { openStage, skippedTraining, type StageHooks } from "./stage.ts";
import { logReports, longestPair, preparePairs, trainEvalSplits } from "../data/prepare.ts";
import { batchLayout, loopDefaults, runLoop, totalSteps, type TrainStageOptions } from "./loop.ts";
import { fingerprintedOptions, type StageResult } from "./manifest.ts";
import { runPrecompute } from "./precompute.ts";
import { assertCacheFits } from "../cache/identity.ts";
import { cacheColumn, readCache } from "../cache/columns.ts";
import { scorePairs } from "../model/scoring.ts";
import { assertRunFits } from "./memory.ts";

/**
 * Options of {@link runDpo} (TRL's DPOConfig names). The loss fields (lossType, a type or a
 * list, lossWeights, beta, labelSmoothing, fDivergenceType, referenceFree, rdpoAlpha,
 * simpoGamma, ...) are those of src/backend/losses.ts.
 */
export interface DpoOptions extends PreferenceLossOptions, TrainStageOptions {
  /** Reference cache from `deno task precompute`. */
  refCache?: string;
  /** Reference model: checked against the cache, or run live when there is no cache. */
  refModel?: string;
  /**
   * Without `refCache` and `refModel`, cache the reference (the starting policy) first (TRL's
   * `precompute_ref_log_probs`); false runs it live: with LoRA the policy's own base with the
   * adapters off (or with its starting adapter, frozen), no second copy of the weights.
   * @default true
   */
  precomputeRefLogProbs?: boolean;
}

/** Trains DPO; returns the metrics rows (the last is the final eval when there is one). */
export async function runDpo(
  store: FileStore,
  backend: Backend,
  options: DpoOptions,
  hooks: StageHooks = {},
): Promise<StageResult> {
  const { train: trainSpec, eval: evalSpec } = trainEvalSplits(
    options.data,
    options.evalData,
    options.evalFraction,
  );
  const { tokenizer, prepared } = await preparePairs(
    store,
    options.model,
    trainSpec,
    evalSpec,
    options.tokenOptions,
  );
  const [train, evalSplit] = prepared.sections;
  logReports(prepared.sections, hooks.log);
  const loaded = await readModelFolder(store, options.model);
  const { config, rawConfig, weights } = loaded;
  const frozenDtype = frozenDtypeOf(loaded, options.frozenDtype);
  checkTokenRange(prepared.sections.flatMap((s) => s.examples), config.vocabSize, options.model);
  // The loss is resolved here, once, and passed down whole.
  const spec = resolveLossSpec(options);
  if (spec.lossTypes.includes("sppo")) {
    for (const s of prepared.sections) assertWinRates(s.examples);
  }
  const withReference = needsReference(spec);
  const { beta, labelSmoothing } = spec;
  const lossType = spec.lossTypes.length === 1 ? spec.lossTypes[0] : spec.lossTypes;
  const loop = loopDefaults(options.loop);
  if (!withReference) {
    const ignored = [options.refCache && "--ref-cache", options.refModel && "--ref-model"]
      .filter(Boolean);
    hooks.log?.(
      `loss ${spec.lossTypes.join(",")} is reference-free: no reference cache or model is ` +
        `needed and the precompute stage is skipped${
          ignored.length ? ` (${ignored.join(" and ")} ignored)` : ""
        }`,
    );
  }

  // The reference: a cache (default), or a live model.
  let cachePath = options.refCache;
  let cache: ReferenceCache | undefined;
  let live: SequenceScorer | undefined;
  // Read once: fingerprinted against the cache, or loaded as the live reference.
  const refFolder = withReference && options.refModel
    ? await readModelFolder(store, options.refModel)
    : undefined;
  const refFingerprint = refFolder
    ? await modelFingerprint(refFolder.config, refFolder.weights)
    : undefined;
  if (!withReference) {
    cachePath = undefined;
  } else if (!cachePath && !options.refModel && options.precomputeRefLogProbs === false) {
    hooks.log?.(
      `no --ref-cache or --ref-model and --no-precompute-ref-log-probs: the reference runs live, ${
        options.peft
          ? "the policy's base with its starting adapter (no second copy)"
          : "a frozen copy of " + options.model
      }`,
    );
  } else if (!cachePath && !options.refModel) {
    cachePath = joinPath(options.outputDir, "ref_cache.bin");
    hooks.log?.(`no --ref-cache or --ref-model: the reference is ${options.model}; caching it`);
    await runPrecompute(store, backend, {
      model: options.model,
      data: trainSpec,
      evalData: evalSpec,
      tokenOptions: options.tokenOptions,
      output: cachePath,
      force: options.force,
      adapter: options.peft?.adapter,
      maxMemory: options.maxMemory,
      frozenDtype: options.frozenDtype,
    }, hooks);
  }
  if (cachePath) {
    cache = await readCache(store, cachePath);
    assertCacheFits(cache.header, prepared, cachePath);
    if (refFingerprint && refFingerprint !== cache.header.reference_fingerprint) {
      throw new CacheError(
        `${cachePath} was computed with another reference model than --ref-model ` +
          `${options.refModel}; rebuild it with \`deno task precompute --model ${options.refModel}\``,
      );
    }
  }

  const maxSeqLen = longestPair(prepared.sections.flatMap((s) => s.examples));
  const modelOptions = { maxBatch: 2 * loop.batchSize, maxSeqLen, frozenDtype };
  // A live reference held as a model of its own: --ref-model, or (full fine-tuning) a frozen
  // copy of the policy; a LoRA policy's own base with the adapters off needs no copy.
  const liveReference = withReference && !cache;
  const referenceDtype = refFolder ? frozenDtypeOf(refFolder, options.frozenDtype) : frozenDtype;
  const { model, adapter, save } = await trainingPolicy(store, backend, {
    config,
    weights,
    source: options.model,
    peft: options.peft,
    modelOptions: { ...modelOptions, gradientCheckpointing: loop.gradientCheckpointing },
    seed: loop.seed,
    log: hooks.log,
    check: (lora) =>
      assertRunFits(
        backend,
        {
          config,
          rows: 2 * loop.batchSize,
          seqLen: maxSeqLen,
          train: true,
          liveReference,
          separateReference: refFolder !== undefined,
          gradientCheckpointing: loop.gradientCheckpointing,
          lora,
          frozenDtype,
          referenceDtype,
        },
        options.maxMemory,
        { rowsPerExample: 2, gradientCheckpointing: true },
        "dpo",
      ),
  });
  const policyFingerprint = await modelFingerprint(config, weights);
  let liveFingerprint: string | undefined;
  if (withReference && !cache && refFolder) {
    const frozen = new LlamaModel(backend, refFolder.config, {
      ...modelOptions,
      trainable: false,
      frozenDtype: referenceDtype,
    });
    frozen.params.writeAll(refFolder.weights, { source: options.refModel });
    live = frozen;
    hooks.log?.(`reference ${options.refModel} runs live (no cache)`);
  } else if (withReference && !cache && model.lora) {
    live = loraReference(model);
    liveFingerprint = await referenceFingerprint(policyFingerprint, adapter?.fingerprint);
  } else if (withReference && !cache) {
    const frozen = new LlamaModel(backend, config, { ...modelOptions, trainable: false });
    frozen.params.writeAll(weights, { source: options.model });
    live = frozen;
    liveFingerprint = policyFingerprint;
  }
  const total = totalSteps(train.examples.length, loop);
  const optimizer = new DeviceOptimizer(backend, model.trainable.layout, {
    ...options.optimizer,
    totalSteps: total,
  });
  const trainer = new Trainer(model, optimizer, { kind: "preference", spec }, live, loop.seed);
  const lora = adapterRecord(adapter);
  const trainRef = cache ? cacheColumn(cache, "train") : undefined;
  const padTokenId = tokenizer.padTokenId;

  const manifestPath = joinPath(options.outputDir, "manifest.json");
  await store.mkdirp(options.outputDir);
  const stage = await openStage(store, {
    stage: "dpo",
    manifestPath,
    options: {
      ...fingerprintedOptions(options),
      beta,
      labelSmoothing,
      lossType,
      loss: spec,
      loop,
      optimizer: optimizer.options,
      ...lora.options,
    },
    inputs: {
      policy: policyFingerprint,
      ...lora.inputs,
      ...(liveFingerprint ? { reference: liveFingerprint } : {}),
      train_data: train.fingerprint,
      ...(evalSplit ? { eval_data: evalSplit.fingerprint } : {}),
      ...(cache ? { reference: cache.header.reference_fingerprint } : {}),
      ...(refFingerprint ? { reference: refFingerprint } : {}),
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
      policy: options.peft?.adapter ? `${options.model} + ${options.peft.adapter}` : options.model,
      reference: withReference
        ? cache?.header.reference_source ?? options.refModel ?? (live ? "live" : "")
        : "",
      ...(cachePath ? { reference_cache: cachePath } : {}),
    };
    manifest.datasets = Object.fromEntries(prepared.sections.map((s) => [s.name, s.report]));
    manifest.results = { device_bytes: backend.bytesByRole() };

    const evaluate = evalSplit
      ? () =>
        evaluatePairs(
          model,
          evalSplit.examples,
          padTokenId,
          loop.batchSize,
          spec,
          cache ? cacheColumn(cache, "eval") : undefined,
          live,
        )
      : undefined;
    const rows = await runLoop({
      store,
      outputDir: options.outputDir,
      model,
      optimizer,
      trainer,
      examples: train.examples.length,
      options: loop,
      unit: "pairs",
      tokenizerFrom: options.model,
      rawConfig,
      resume: options.resume,
      adapter: save,
      runFingerprint: manifest.stage_fingerprint,
    }, {
      microBatch: (indices) => {
        const part = indices.map((i) => train.examples[i]);
        const batch = collatePreference(part, { padTokenId });
        const P = part.length;
        const referenceLogps = trainRef ? new Float64Array(2 * P) : undefined;
        if (referenceLogps) {
          indices.forEach((i, j) => [referenceLogps[j], referenceLogps[P + j]] = trainRef!(i));
        }
        return { batch, referenceLogps, winRates: collateWinRates(part) };
      },
      evaluate,
      ...hooks,
    });
    await stage.finish({
      final: rows.at(-1),
      device_bytes: backend.bytesByRole(),
      batches: batchLayout(train.examples.length, loop, "pairs"),
    });
    return { skipped: false, rows };
  } finally {
    await stage.release();
  }
}

/**
 * Eval metrics of the policy on held-out pairs (TRL's names, without the eval_ prefix):
 * the loss and implicit-reward statistics against the cached (or live) reference; a
 * reference-free spec reads neither.
 */
export async function evaluatePairs(
  model: LlamaModel,
  examples: readonly PreferenceExample[],
  padTokenId: number,
  batchSize: number,
  spec: PreferenceLossSpec,
  reference?: (i: number) => [number, number],
  live?: SequenceScorer,
): Promise<Record<string, number>> {
  const policy = await scorePairs(model, examples, { batchSize, padTokenId });
  let refChosen: ArrayLike<number>, refRejected: ArrayLike<number>;
  if (spec.referenceFree) {
    refChosen = refRejected = new Float64Array(examples.length);
  } else if (reference) {
    refChosen = examples.map((_, i) => reference(i)[0]);
    refRejected = examples.map((_, i) => reference(i)[1]);
  } else {
    const r = await scorePairs(live!, examples, { batchSize, padTokenId });
    refChosen = r.chosenLogps;
    refRejected = r.rejectedLogps;
  }
  const result = preferenceLossWith(
    spec,
    policy.chosenLogps,
    policy.rejectedLogps,
    refChosen,
    refRejected,
    {
      chosenTokens: policy.chosenTokens,
      rejectedTokens: policy.rejectedTokens,
      ...winRateColumns(examples),
    },
  );
  return preferenceMetrics(result, policy.chosenLogps, policy.rejectedLogps, spec);
}

/** The examples' win-rates as the pure loss reads them (absent when any example has none). */
function winRateColumns(examples: readonly PreferenceExample[]) {
  const both = collateWinRates(examples);
  if (!both) return {};
  const P = examples.length;
  return { chosenWinRates: both.subarray(0, P), rejectedWinRates: both.subarray(P) };
}
