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
import {
  CacheError,
  decodeCache,
  encodeCache,
  KTO_COLUMNS,
  type ReferenceCache,
} from "../cache/reference_cache.ts";
import {
  collateSequences,
  fingerprintDataset,
  loadDataset,
  loadTokenizer,
  type PreferenceExample,
  type SequenceExample,
  tokenizeUnpaired,
} from "../data/mod.ts";
import type { FileStore } from "../io/fs.ts";
import { dirname, joinPath } from "../io/fs.ts";
import { modelFingerprint, readModelFolder } from "../model/model_folder.ts";
import { checkTokenRange } from "../data/vocab_check.ts";
import { LlamaModel } from "../model/llama.ts";
import { readAdapter } from "../model/lora_io.ts";
import {
  adapterRecord,
  referenceFingerprint as referenceIdentity,
  trainedOutputs,
  trainingPolicy,
} from "./peft.ts";
import { ktoWeightWarning, resolveKtoSpec } from "../backend/kto_loss.ts";
import { evaluateUnpaired } from "./kto_eval.ts";
import { DeviceOptimizer } from "../train/optimizer.ts";
import { Trainer } from "../train/trainer.ts";
import {
  logReports,
  longestPair,
  type PreparedSplit,
  resolvedTokenOptions,
  type SplitSpec,
  tokenizerFingerprint,
  type TokenOptions,
  trainEvalSplits,
} from "../data/prepare.ts";
import { openStage, skippedTraining, type StageHooks } from "./stage.ts";
import { batchLayout, loopDefaults, runLoop, totalSteps, type TrainStageOptions } from "./loop.ts";
import { fingerprintedOptions, type StageResult } from "./manifest.ts";
import { assertCacheFits, cacheMismatches, cacheSections } from "../cache/identity.ts";
import { scorePairs } from "../model/scoring.ts";
import { assertRunFits } from "./memory.ts";

/** Options of {@link runKto} (TRL's KTOConfig names). */
export interface KtoOptions extends Partial<KtoLossSpec>, TrainStageOptions {
  /** KTO reference cache: read when it exists and fits, built there otherwise. */
  refCache?: string;
  /** The reference model for the cache. @default model */
  refModel?: string;
}

/** Prepared unpaired splits and the identity the cache keys on. */
export interface PreparedUnpaired {
  sections: Array<PreparedSplit<SequenceExample> & { name: string }>;
  tokenizerFingerprint: string;
  tokenOptions: Record<string, unknown>;
}

/** Loads the tokenizer and the unpaired training (and eval) splits. */
export async function prepareUnpaired(
  store: FileStore,
  tokenizerDir: string,
  data: SplitSpec,
  evalData: SplitSpec | undefined,
  tokenOptions: TokenOptions = {},
) {
  const tokenizer = await loadTokenizer(store, tokenizerDir);
  const sections: PreparedUnpaired["sections"] = [];
  for (const [name, spec] of [["train", data], ["eval", evalData]] as const) {
    if (!spec) continue;
    const dataset = await loadDataset(store, spec.path, "unpaired", {
      split: spec.split ?? "train",
      testFraction: spec.testFraction ? spec.testFraction : undefined,
      seed: spec.seed ?? 42,
      skipInvalid: spec.skipInvalid ?? false,
    });
    const { examples, report } = tokenizeUnpaired(dataset.rows, tokenizer, tokenOptions);
    report.read = dataset.report.read;
    sections.push({
      name,
      examples,
      fingerprint: await fingerprintDataset(dataset, tokenizer, tokenOptions),
      fileHashes: dataset.fileHashes,
      source: spec.path,
      report,
    });
  }
  const prepared: PreparedUnpaired = {
    sections,
    tokenizerFingerprint: await tokenizerFingerprint(tokenizer),
    tokenOptions: resolvedTokenOptions("preference", tokenOptions),
  };
  return { tokenizer, prepared };
}

/**
 * Each example with its mismatched pair, as a pseudo preference pair: `chosenIds` is the
 * example's completion, `rejectedIds` the completion of example i+1 (wrapping), both after
 * prompt i. One forward of collatePreference then scores both.
 */
export function mismatchedPairs(examples: readonly SequenceExample[]): PreferenceExample[] {
  return examples.map((e, i) => ({
    file: e.file,
    line: e.line,
    promptIds: e.promptIds,
    chosenIds: e.completionIds,
    rejectedIds: examples[(i + 1) % examples.length].completionIds,
  }));
}

/** Builds (or reuses, when it fits) the KTO reference cache at `output`. */
export async function runKtoPrecompute(
  store: FileStore,
  backend: Backend,
  o: {
    model: string;
    prepared: PreparedUnpaired;
    padTokenId: number;
    output: string;
    batchSize?: number;
    force?: boolean;
    /** A PEFT adapter on `model`: the reference is the base plus it. */
    adapter?: string;
    maxMemory?: number;
  },
  hooks: StageHooks = {},
): Promise<{ cache: ReferenceCache; skipped: boolean }> {
  const { config, weights } = await readModelFolder(store, o.model);
  checkTokenRange(o.prepared.sections.flatMap((s) => s.examples), config.vocabSize, o.model);
  const adapter = o.adapter ? await readAdapter(store, o.adapter, config, 0) : undefined;
  const referenceFingerprint = await referenceIdentity(
    await modelFingerprint(config, weights),
    adapter?.fingerprint,
  );
  const source = o.adapter ? `${o.model} + ${o.adapter}` : o.model;
  if (!o.force && await store.exists(o.output)) {
    const cache = await decodeCache(await store.readFile(o.output), o.output).catch(() =>
      undefined
    );
    if (
      cache && cache.columns.kl_logp &&
      cache.header.reference_fingerprint === referenceFingerprint &&
      cacheMismatches(cache.header, o.prepared).length === 0
    ) {
      hooks.log?.(`reference cache ${o.output} is up to date`);
      return { cache, skipped: true };
    }
  }
  const all = o.prepared.sections.flatMap((s) => mismatchedPairs(s.examples));
  const batchSize = o.batchSize ?? 16;
  assertRunFits(
    backend,
    { config, rows: 2 * batchSize, seqLen: longestPair(all), train: false },
    o.maxMemory,
    { rowsPerExample: 2, batchFlag: "the reference batch" },
    "kto precompute",
  );
  const model = new LlamaModel(backend, config, {
    maxBatch: 2 * batchSize,
    maxSeqLen: longestPair(all),
    trainable: false,
    lora: adapter?.options,
  });
  model.params.writeAll(weights, { source: o.model });
  if (adapter) model.lora!.params.writeAll(adapter.weights, { source: o.adapter });
  hooks.log?.(`scoring ${all.length} examples and their mismatched pairs with ${source}`);
  const scores = await scorePairs(model, all, {
    batchSize,
    padTokenId: o.padTokenId,
    onProgress: (done) => hooks.onProgress?.(done, all.length),
  });
  const bytes = await encodeCache({
    reference_fingerprint: referenceFingerprint,
    reference_source: source,
    sections: cacheSections(o.prepared),
    tokenizer_fingerprint: o.prepared.tokenizerFingerprint,
    token_options: o.prepared.tokenOptions,
    total: all.length,
    start: 0,
    end: all.length,
    adapter: backend.adapterName,
  }, {
    completion_logp: scores.chosenLogps,
    kl_logp: scores.rejectedLogps,
    completion_len: scores.chosenTokens,
    kl_len: scores.rejectedTokens,
  }, KTO_COLUMNS);
  await store.mkdirp(dirname(o.output));
  await store.writeFileAtomic(o.output, bytes);
  return { cache: await decodeCache(bytes, o.output), skipped: false };
}

/** Reference log-probs of example i of a section: [completion, mismatched pair]. */
function ktoColumn(cache: ReferenceCache, name: string, path: string) {
  if (!cache.columns.kl_logp) {
    throw new CacheError(
      `${path} is not a KTO cache (no kl_logp column); let deno task kto build it`,
    );
  }
  let offset = 0;
  for (const s of cache.header.sections) {
    if (s.name === name) break;
    offset += s.count;
  }
  const completion = cache.columns.completion_logp, kl = cache.columns.kl_logp;
  return (i: number): [number, number] => [completion[offset + i], kl[offset + i]];
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
  }, hooks);
  assertCacheFits(cache.header, prepared, cachePath);

  const { config, rawConfig, weights } = await readModelFolder(store, options.model);
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
