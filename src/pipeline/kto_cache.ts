/**
 * The KTO reference cache: the unpaired splits as the cache keys them, each example's mismatched
 * pair (KTO's KL estimate z0 scores prompt i with completion i+1), the precompute that scores
 * both with the reference into KTO_COLUMNS, and the column reader training uses.
 *
 * @module
 */

import type { Backend } from "../backend/mod.ts";
import {
  CacheError,
  decodeCache,
  encodeCache,
  KTO_COLUMNS,
  type ReferenceCache,
} from "../cache/reference_cache.ts";
import {
  fingerprintDataset,
  loadDataset,
  loadTokenizer,
  type PreferenceExample,
  type SequenceExample,
  tokenizeUnpaired,
} from "../data/mod.ts";
import type { FileStore } from "../io/fs.ts";
import { dirname } from "../io/fs.ts";
import {
  type FrozenDtypeChoice,
  frozenDtypeOf,
  modelFingerprint,
  readModelFolder,
} from "../model/model_folder.ts";
import { checkTokenRange } from "../data/vocab_check.ts";
import { LlamaModel } from "../model/llama.ts";
import { readAdapter } from "../model/lora_io.ts";
import { referenceFingerprint as referenceIdentity } from "./peft.ts";
import {
  longestPair,
  type PreparedSplit,
  resolvedTokenOptions,
  type SplitSpec,
  tokenizerFingerprint,
  type TokenOptions,
} from "../data/prepare.ts";
import type { StageHooks } from "./stage.ts";
import { cacheMismatches, cacheSections } from "../cache/identity.ts";
import { scorePairs } from "../model/scoring.ts";
import { assertRunFits } from "./memory.ts";

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
    /** `--frozen-dtype`: the reference in its checkpoint's precision (auto) or f32. */
    frozenDtype?: FrozenDtypeChoice;
  },
  hooks: StageHooks = {},
): Promise<{ cache: ReferenceCache; skipped: boolean }> {
  const loaded = await readModelFolder(store, o.model);
  const { config, weights } = loaded;
  const frozenDtype = frozenDtypeOf(loaded, o.frozenDtype);
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
    {
      config,
      rows: 2 * batchSize,
      seqLen: longestPair(all),
      train: false,
      lora: adapter?.options,
      frozenDtype,
    },
    o.maxMemory,
    { rowsPerExample: 2, batchFlag: "the reference batch" },
    "kto precompute",
  );
  const model = new LlamaModel(backend, config, {
    maxBatch: 2 * batchSize,
    maxSeqLen: longestPair(all),
    trainable: false,
    lora: adapter?.options,
    frozenDtype,
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
export function ktoColumn(cache: ReferenceCache, name: string, path: string) {
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
