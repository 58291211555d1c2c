/**
 * The precompute stage: the reference model scores every training (and eval) pair once and the
 * numbers go to a cache file, so DPO training never loads the reference. `shard` computes one
 * slice of the examples; {@link mergeCaches} joins the slices.
 *
 * @module
 */

import type { Backend } from "../backend/mod.ts";
import { encodeCache } from "../cache/reference_cache.ts";
import { cacheSections } from "../cache/identity.ts";
import type { FileStore } from "../io/fs.ts";
import { dirname } from "../io/fs.ts";
import { killPoint } from "../io/kill_point.ts";
import {
  type FrozenDtypeChoice,
  frozenDtypeOf,
  modelFingerprint,
  readModelFolder,
} from "../model/model_folder.ts";
import { checkTokenRange } from "../data/vocab_check.ts";
import { LlamaModel } from "../model/llama.ts";
import {
  logReports,
  longestPair,
  preparePairs,
  type SplitSpec,
  type TokenOptions,
} from "../data/prepare.ts";
import { scorePairs } from "../model/scoring.ts";
import { fingerprintedOptions } from "./manifest.ts";
import { readAdapter } from "../model/lora_io.ts";
import { referenceFingerprint as referenceIdentity } from "./peft.ts";
import { openStage, type StageHooks } from "./stage.ts";
import { assertRunFits } from "./memory.ts";

/** Options of {@link runPrecompute}. */
export interface PrecomputeOptions {
  /** Reference model folder (HF layout, with tokenizer files). */
  model: string;
  /** Training pairs. */
  data: SplitSpec;
  /** Eval pairs: another file, or the held-out part of `data`. */
  evalData?: SplitSpec;
  /** Options that change token ids (as the training run will use). */
  tokenOptions?: TokenOptions;
  /** Cache file to write. */
  output: string;
  /** Pairs per forward. @default 16 */
  batchSize?: number;
  /** Compute only slice `index` of `count` (0-based). */
  shard?: { index: number; count: number };
  /** Redo even when the cache is up to date. @default false */
  force?: boolean;
  /**
   * A PEFT adapter folder: the reference is `model` plus this adapter (DPO after a LoRA SFT).
   * New adapters need none: their B is zero, so the reference is the base itself.
   */
  adapter?: string;
  /** `--max-memory`: device bytes the run may hold; the memory plan refuses more. */
  maxMemory?: number;
  /** `--frozen-dtype`: hold the reference in the checkpoint's precision (auto) or f32. */
  frozenDtype?: FrozenDtypeChoice;
}

/** Runs the precompute stage and writes the cache file atomically. Returns its header fields. */
export async function runPrecompute(
  store: FileStore,
  backend: Backend,
  options: PrecomputeOptions,
  hooks: StageHooks = {},
): Promise<{ referenceFingerprint: string; examples: number; skipped: boolean }> {
  const { tokenizer, prepared } = await preparePairs(
    store,
    options.model,
    options.data,
    options.evalData,
    options.tokenOptions,
  );
  logReports(prepared.sections, hooks.log);
  const loaded = await readModelFolder(store, options.model);
  const { config, weights } = loaded;
  const frozenDtype = frozenDtypeOf(loaded, options.frozenDtype);
  checkTokenRange(prepared.sections.flatMap((s) => s.examples), config.vocabSize, options.model);
  const adapter = options.adapter
    ? await readAdapter(store, options.adapter, config, 0)
    : undefined;
  const referenceFingerprint = await referenceIdentity(
    await modelFingerprint(config, weights),
    adapter?.fingerprint,
  );
  const referenceSource = options.adapter ? `${options.model} + ${options.adapter}` : options.model;
  const manifestPath = `${options.output}.manifest.json`;
  const stage = await openStage(store, {
    stage: "precompute",
    manifestPath,
    options: { ...fingerprintedOptions(options), batchSize: options.batchSize ?? 16 },
    inputs: {
      reference: referenceFingerprint,
      tokenizer: prepared.tokenizerFingerprint,
      ...Object.fromEntries(prepared.sections.map((s) => [`${s.name}_data`, s.fingerprint])),
    },
    adapter: backend.adapterName,
    outputs: [options.output],
    force: options.force,
    log: hooks.log,
  });
  const { manifest } = stage;
  const all = prepared.sections.flatMap((s) => s.examples);
  const total = all.length;
  const { index = 0, count = 1 } = options.shard ?? {};
  const start = Math.floor(index * total / count);
  const end = Math.floor((index + 1) * total / count);
  const slice = all.slice(start, end);
  if (stage.upToDate) {
    return { referenceFingerprint, examples: slice.length, skipped: true };
  }
  try {
    const batchSize = options.batchSize ?? 16;
    const maxSeqLen = longestPair(slice.length ? slice : all);
    assertRunFits(
      backend,
      {
        config,
        rows: 2 * batchSize,
        seqLen: maxSeqLen,
        train: false,
        lora: adapter?.options,
        frozenDtype,
      },
      options.maxMemory,
      { rowsPerExample: 2, batchFlag: "--batch-size" },
      "precompute",
    );
    const model = new LlamaModel(backend, config, {
      maxBatch: 2 * batchSize,
      maxSeqLen,
      trainable: false,
      lora: adapter?.options,
      frozenDtype,
    });
    model.params.writeAll(weights, { source: options.model });
    if (adapter) model.lora!.params.writeAll(adapter.weights, { source: options.adapter });
    hooks.log?.(
      `scoring ${slice.length} pairs (examples ${start}..${end} of ${total}) with ${referenceSource}`,
    );
    const scores = await scorePairs(model, slice, {
      batchSize,
      padTokenId: tokenizer.padTokenId,
      onProgress: (done) => {
        if (done * 2 >= slice.length) killPoint("precompute:mid-cache");
        hooks.signal?.throwIfAborted();
        hooks.onProgress?.(done, slice.length);
      },
    });
    const bytes = await encodeCache(
      {
        reference_fingerprint: referenceFingerprint,
        reference_source: referenceSource,
        sections: cacheSections(prepared),
        tokenizer_fingerprint: prepared.tokenizerFingerprint,
        token_options: prepared.tokenOptions,
        total,
        start,
        end,
        adapter: backend.adapterName,
      },
      {
        chosen_logp: scores.chosenLogps,
        rejected_logp: scores.rejectedLogps,
        chosen_len: scores.chosenTokens,
        rejected_len: scores.rejectedTokens,
      },
    );
    await store.mkdirp(dirname(options.output));
    await store.writeFileAtomic(options.output, bytes);
    manifest.sources = { reference: referenceSource };
    manifest.datasets = Object.fromEntries(prepared.sections.map((s) => [s.name, s.report]));
    await stage.finish({
      examples: slice.length,
      start,
      end,
      total,
    });
    return { referenceFingerprint, examples: slice.length, skipped: false };
  } finally {
    await stage.release();
  }
}
