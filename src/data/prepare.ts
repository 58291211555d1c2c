/**
 * A run's data: a dataset split loaded, validated, tokenized and fingerprinted, with everything
 * the reference cache keys on. The same function serves precompute and DPO, so both see the same
 * examples in the same order.
 *
 * @module
 */

import type { FileStore } from "../io/fs.ts";
import { sha256Hex, stableStringify } from "../io/hash.ts";
import {
  DatasetError,
  type DatasetReport,
  fingerprintDataset,
  formatReport,
  type HfTokenizer,
  loadDataset,
  loadTokenizer,
  type PreferenceExample,
  type SequenceExample,
  tokenizePreference,
  tokenizeSft,
  type TruncationMode,
} from "./mod.ts";

/** Options that change token ids (TRL's names in kebab-case on the command line). */
export interface TokenOptions {
  /** Most tokens of prompt and completion together; null = no limit. @default 1024 */
  maxLength?: number | null;
  /** Most tokens of a prompt; null = no limit. @default 512 (preference), null (SFT) */
  maxPromptLength?: number | null;
  /** Which end of a long prompt is kept. @default "keep_end" */
  truncationMode?: TruncationMode;
}

/** Where a split comes from. */
export interface SplitSpec {
  /** Dataset file or folder. */
  path: string;
  /** `train` or `test` (with `testFraction`), or a named split of a folder. @default "train" */
  split?: string;
  /** Held-out fraction of the file (0 = none). @default 0 */
  testFraction?: number;
  /** Seed of the held-out split. @default 42 */
  seed?: number;
  /** Drop invalid rows (reported) instead of stopping. @default false */
  skipInvalid?: boolean;
}

/** A tokenized split and its identity. */
export interface PreparedSplit<Example> {
  examples: Example[];
  fingerprint: string;
  fileHashes: string[];
  source: string;
  report: DatasetReport;
}

/**
 * The training and held-out splits of a run: the held-out rows come from `evalData` (another
 * file) or, with `evalFraction` > 0, from a seeded part of `data`; otherwise there are none.
 */
export function trainEvalSplits(
  data: SplitSpec,
  evalData?: string,
  evalFraction?: number,
): { train: SplitSpec; eval?: SplitSpec } {
  if (evalData) return { train: data, eval: { path: evalData } };
  if (!evalFraction) return { train: data };
  return {
    train: { ...data, testFraction: evalFraction, split: "train" },
    eval: { ...data, testFraction: evalFraction, split: "test" },
  };
}

/** Token options with defaults resolved, as stored in cache headers and manifests. */
export function resolvedTokenOptions(
  kind: "preference" | "sft",
  o: TokenOptions,
): Required<TokenOptions> {
  return {
    maxLength: o.maxLength === undefined ? 1024 : o.maxLength,
    maxPromptLength: o.maxPromptLength === undefined
      ? (kind === "sft" ? null : 512)
      : o.maxPromptLength,
    truncationMode: o.truncationMode ?? "keep_end",
  };
}

/** Fingerprint of a tokenizer: its files' canonical content. */
export async function tokenizerFingerprint(tokenizer: HfTokenizer): Promise<string> {
  const parts: string[] = [];
  for (const s of tokenizer.sources) parts.push(`${s.name}:${await sha256Hex(s.bytes)}`);
  return await sha256Hex(stableStringify(parts.sort()));
}

function loadOptions(spec: SplitSpec) {
  return {
    split: spec.split ?? "train",
    testFraction: spec.testFraction ? spec.testFraction : undefined,
    seed: spec.seed ?? 42,
    skipInvalid: spec.skipInvalid ?? false,
  };
}

/** Loads, validates, tokenizes and fingerprints a preference split. */
export async function preparePreferenceSplit(
  store: FileStore,
  spec: SplitSpec,
  tokenizer: HfTokenizer,
  tokenOptions: TokenOptions,
): Promise<PreparedSplit<PreferenceExample>> {
  const dataset = await loadDataset(store, spec.path, "preference", loadOptions(spec));
  const { examples, report } = tokenizePreference(dataset.rows, tokenizer, tokenOptions);
  mergeReports(report, dataset.report);
  requireExamples(examples.length, report, spec.path);
  return {
    examples,
    fingerprint: await fingerprintDataset(dataset, tokenizer, tokenOptions),
    fileHashes: dataset.fileHashes,
    source: spec.path,
    report,
  };
}

/** Loads, validates, tokenizes and fingerprints an SFT split. */
export async function prepareSftSplit(
  store: FileStore,
  spec: SplitSpec,
  tokenizer: HfTokenizer,
  tokenOptions: TokenOptions & { completionOnlyLoss?: boolean },
): Promise<PreparedSplit<SequenceExample>> {
  const dataset = await loadDataset(store, spec.path, "sft", loadOptions(spec));
  const { examples, report } = tokenizeSft(dataset.rows, tokenizer, tokenOptions);
  mergeReports(report, dataset.report);
  requireExamples(examples.length, report, spec.path);
  return {
    examples,
    fingerprint: await fingerprintDataset(dataset, tokenizer, tokenOptions),
    fileHashes: dataset.fileHashes,
    source: spec.path,
    report,
  };
}

/**
 * A split left with no example (every row dropped: too long, empty) cannot train or be scored;
 * that is bad input, not a run with nothing to do.
 * @throws {DatasetError} naming the dataset and why its rows were dropped
 */
export function requireExamples(kept: number, report: DatasetReport, path: string): void {
  if (kept > 0) return;
  throw new DatasetError(
    `${path}: no example left of its ${report.read} rows (${formatReport(report)}); ` +
      "raise --max-length / --max-prompt-length, or fix the rows",
  );
}

/** Folds the loader's counts (read, invalid, held out) into the tokenizer's report. */
function mergeReports(into: DatasetReport, from: DatasetReport): void {
  into.read = from.read;
  for (const [reason, count] of Object.entries(from.dropped)) {
    into.dropped[reason] = (into.dropped[reason] ?? 0) + count;
  }
}

/** Longest sequence (prompt + completion) of a set of pairs. */
export function longestPair(examples: readonly PreferenceExample[]): number {
  let longest = 1;
  for (const e of examples) {
    longest = Math.max(
      longest,
      e.promptIds.length + Math.max(e.chosenIds.length, e.rejectedIds.length),
    );
  }
  return longest;
}

/** Longest sequence of a set of SFT examples. */
export function longestSequence(examples: readonly SequenceExample[]): number {
  let longest = 1;
  for (const e of examples) {
    longest = Math.max(longest, e.promptIds.length + e.completionIds.length);
  }
  return longest;
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

/** Prints each split's counts (read, kept, dropped by reason, truncated). */
export function logReports(
  sections: ReadonlyArray<{ name: string; source: string; report: DatasetReport }>,
  log?: (message: string) => void,
): void {
  for (const s of sections) log?.(`${s.name} data ${s.source}: ${formatReport(s.report)}`);
}
