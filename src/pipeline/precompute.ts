/**
 * The precompute stage: the reference model scores every training (and eval) pair once and the
 * numbers go to a cache file, so DPO training never loads the reference. `shard` computes one
 * slice of the examples; {@link mergeCaches} joins the slices.
 *
 * @module
 */

import type { Backend } from "../backend.ts";
import {
  CacheError,
  type CacheHeader,
  type CacheSection,
  decodeCache,
  encodeCache,
} from "../cache/reference_cache.ts";
import {
  type DatasetReport,
  formatReport,
  loadTokenizer,
  type PreferenceExample,
} from "../data/mod.ts";
import type { FileStore } from "../io/fs.ts";
import { dirname } from "../io/fs.ts";
import { modelFingerprint, readModelFolder } from "../model/checkpoint.ts";
import { LlamaModel } from "../model/llama.ts";
import {
  longestPair,
  type PreparedSplit,
  preparePreferenceSplit,
  resolvedTokenOptions,
  type SplitSpec,
  tokenizerFingerprint,
  type TokenOptions,
} from "./data.ts";
import { scorePairs } from "./scoring.ts";
import { fingerprintedOptions, finishManifest, isUpToDate, startManifest } from "./manifest.ts";

/** Options of {@link runPrecompute}. */
export interface PrecomputeOptions {
  /** Reference model folder (HF layout, with tokenizer files). */
  model: string;
  /** Training pairs. */
  data: SplitSpec;
  /** Eval pairs: another file, or the held-out part of `data`. */
  evalData?: SplitSpec;
  tokenOptions?: TokenOptions;
  /** Cache file to write. */
  output: string;
  /** Pairs per forward. @default 16 */
  batchSize?: number;
  /** Compute only slice `index` of `count` (0-based). */
  shard?: { index: number; count: number };
  /** Redo even when the cache is up to date. @default false */
  force?: boolean;
}

/** The splits a run reads, tokenized, and the identity the cache keys on. */
export interface PreparedPairs {
  sections: Array<PreparedSplit<PreferenceExample> & { name: string }>;
  tokenizerFingerprint: string;
  tokenOptions: Record<string, unknown>;
}

/** Loads the tokenizer of `tokenizerDir` and prepares the training and eval splits. */
export async function preparePairs(
  store: FileStore,
  tokenizerDir: string,
  data: SplitSpec,
  evalData: SplitSpec | undefined,
  tokenOptions: TokenOptions = {},
) {
  const tokenizer = await loadTokenizer(store, tokenizerDir);
  const sections: PreparedPairs["sections"] = [
    { name: "train", ...await preparePreferenceSplit(store, data, tokenizer, tokenOptions) },
  ];
  if (evalData) {
    sections.push({
      name: "eval",
      ...await preparePreferenceSplit(store, evalData, tokenizer, tokenOptions),
    });
  }
  const prepared: PreparedPairs = {
    sections,
    tokenizerFingerprint: await tokenizerFingerprint(tokenizer),
    tokenOptions: resolvedTokenOptions("preference", tokenOptions),
  };
  return { tokenizer, prepared };
}

/**
 * What a cache keys on: each split's identity, the tokenizer and the token options. Preference
 * pairs ({@link PreparedPairs}) and KTO's unpaired examples (src/pipeline/kto.ts) both have it.
 */
export interface CacheIdentity {
  sections: ReadonlyArray<{
    name: string;
    fingerprint: string;
    fileHashes: string[];
    source: string;
    examples: { length: number };
  }>;
  tokenizerFingerprint: string;
  tokenOptions: Record<string, unknown>;
}

/** Prints each split's counts (read, kept, dropped by reason, truncated). */
export function logReports(
  sections: ReadonlyArray<{ name: string; source: string; report: DatasetReport }>,
  log?: (message: string) => void,
): void {
  for (const s of sections) log?.(`${s.name} data ${s.source}: ${formatReport(s.report)}`);
}

/** Cache sections describing prepared splits. */
export function cacheSections(prepared: CacheIdentity): CacheSection[] {
  return prepared.sections.map((s) => ({
    name: s.name,
    dataset_fingerprint: s.fingerprint,
    source: s.source,
    file_hashes: s.fileHashes,
    count: s.examples.length,
  }));
}

/**
 * Why a cache does not fit a run, one reason per line with what to do; empty when it fits.
 * Compares the tokenizer, the token-affecting options and each split's data.
 */
export function cacheMismatches(header: CacheHeader, prepared: CacheIdentity): string[] {
  const reasons: string[] = [];
  if (header.start !== 0 || header.end !== header.total) {
    reasons.push(
      `it holds only examples ${header.start}..${header.end} of ${header.total} (a shard): ` +
        "join the shards with `deno task precompute --merge`",
    );
  }
  if (header.tokenizer_fingerprint !== prepared.tokenizerFingerprint) {
    reasons.push("it was built with another tokenizer");
  }
  const keys = new Set([
    ...Object.keys(header.token_options),
    ...Object.keys(prepared.tokenOptions),
  ]);
  for (const key of keys) {
    const a = JSON.stringify(header.token_options[key]);
    const b = JSON.stringify(prepared.tokenOptions[key]);
    if (a !== b) reasons.push(`it was built with ${key} ${a}, this run uses ${b}`);
  }
  for (const s of prepared.sections) {
    const cached = header.sections.find((c) => c.name === s.name);
    if (!cached) {
      reasons.push(`it has no ${s.name} split (built without it)`);
    } else if (cached.dataset_fingerprint !== s.fingerprint) {
      const files = JSON.stringify(cached.file_hashes) !== JSON.stringify(s.fileHashes);
      reasons.push(
        `its ${s.name} split was built from ${
          files ? "other data" : "the same files split or tokenized differently"
        } (${cached.source}, ${cached.count} examples; this run: ${s.source}, ${s.examples.length})`,
      );
    }
  }
  return reasons;
}

/** Raises a {@link CacheError} (exit code 2) listing why the cache at `path` is stale. */
export function assertCacheFits(header: CacheHeader, prepared: CacheIdentity, path: string): void {
  const reasons = cacheMismatches(header, prepared);
  if (reasons.length) {
    throw new CacheError(
      `${path} does not fit this run:\n  - ${reasons.join("\n  - ")}\n` +
        "rebuild it with `deno task precompute` using the same --data, --eval-data and token options",
    );
  }
}

/** Runs the precompute stage and writes the cache file atomically. Returns its header fields. */
export async function runPrecompute(
  store: FileStore,
  backend: Backend,
  options: PrecomputeOptions,
  hooks: { onProgress?: (done: number, total: number) => void; log?: (m: string) => void } = {},
): Promise<{ referenceFingerprint: string; examples: number; skipped: boolean }> {
  const { tokenizer, prepared } = await preparePairs(
    store,
    options.model,
    options.data,
    options.evalData,
    options.tokenOptions,
  );
  logReports(prepared.sections, hooks.log);
  const { config, weights } = await readModelFolder(store, options.model);
  const referenceFingerprint = await modelFingerprint(config, weights);
  const manifestPath = `${options.output}.manifest.json`;
  const manifest = await startManifest(
    "precompute",
    { ...fingerprintedOptions(options), batchSize: options.batchSize ?? 16 },
    {
      reference: referenceFingerprint,
      tokenizer: prepared.tokenizerFingerprint,
      ...Object.fromEntries(prepared.sections.map((s) => [`${s.name}_data`, s.fingerprint])),
    },
    backend.adapterName,
  );
  const all = prepared.sections.flatMap((s) => s.examples);
  const total = all.length;
  const { index = 0, count = 1 } = options.shard ?? {};
  const start = Math.floor(index * total / count);
  const end = Math.floor((index + 1) * total / count);
  const slice = all.slice(start, end);
  if (
    !options.force && await store.exists(options.output) &&
    await isUpToDate(store, manifestPath, manifest.stage_fingerprint) &&
    await decodeCache(await store.readFile(options.output), options.output).then(
      () => true,
      () => false,
    )
  ) {
    return { referenceFingerprint, examples: slice.length, skipped: true };
  }
  const batchSize = options.batchSize ?? 16;
  const model = new LlamaModel(backend, config, {
    maxBatch: 2 * batchSize,
    maxSeqLen: longestPair(slice.length ? slice : all),
    trainable: false,
  });
  model.params.writeAll(weights, { source: options.model });
  hooks.log?.(
    `scoring ${slice.length} pairs (examples ${start}..${end} of ${total}) with ${options.model}`,
  );
  const scores = await scorePairs(model, slice, {
    batchSize,
    padTokenId: tokenizer.padTokenId,
    onProgress: (done) => hooks.onProgress?.(done, slice.length),
  });
  const bytes = await encodeCache(
    {
      reference_fingerprint: referenceFingerprint,
      reference_source: options.model,
      sections: cacheSections(prepared),
      tokenizer_fingerprint: prepared.tokenizerFingerprint,
      token_options: prepared.tokenOptions,
      total,
      start,
      end,
      adapter: backend.adapterName,
      created: new Date().toISOString(),
    },
    {
      chosen_logp: scores.chosenLogps,
      rejected_logp: scores.rejectedLogps,
      chosen_len: scores.chosenLens,
      rejected_len: scores.rejectedLens,
    },
  );
  await store.mkdirp(dirname(options.output));
  await store.writeFileAtomic(options.output, bytes);
  manifest.sources = { reference: options.model };
  manifest.datasets = Object.fromEntries(prepared.sections.map((s) => [s.name, s.report]));
  await finishManifest(store, manifestPath, manifest, {
    examples: slice.length,
    start,
    end,
    total,
  });
  return { referenceFingerprint, examples: slice.length, skipped: false };
}
