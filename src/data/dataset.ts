/**
 * Loading a dataset: find its files, read and validate every row (before any model or tokenizer
 * is loaded), stop on bad rows unless asked to skip them, and take a split. The result carries
 * the file hashes and resolved options that {@link fingerprintDataset} needs.
 *
 * @module
 */

import type { FileStore } from "../io/fs.ts";
import { resolveDatasetFiles } from "./files.ts";
import { fingerprint, sha256Hex } from "./fingerprint.ts";
import {
  addDropped,
  DatasetError,
  type DatasetReport,
  newReport,
  ValidationError,
  type ValidationIssue,
} from "./issues.ts";
import { type RawRecord, readRecords } from "./read.ts";
import { seededPermutation } from "./sampler.ts";
import type { SftTokenizeOptions, TruncationOptions } from "./tokenize.ts";
import type { DatasetFormat, DatasetKind, PreferenceRow, SequenceRow } from "./types.ts";
import { validateRecords } from "./validate.ts";

/** Options of the dataset loaders. */
export interface LoadOptions {
  /** Which split to return: a named split of a folder, or a part of a held-out split. @default "train" */
  split?: string;
  /**
   * Fraction of the train rows held out as the `test` split (0 < f < 1); the test part has
   * ceil(f * n) rows, chosen with `seed`, and both parts keep file order. @default none
   */
  testFraction?: number;
  /** Seed of the held-out split. @default 42 */
  seed?: number;
  /** Drop invalid rows (still reported) instead of throwing {@link ValidationError}. @default false */
  skipInvalid?: boolean;
}

/** A validated dataset, ready to tokenize. */
export interface LoadedDataset<Row> {
  /** What the rows are for: pairs, single sequences or labelled examples. */
  kind: DatasetKind;
  /** The rows of the chosen split that passed validation, in file order. */
  rows: Row[];
  /** The format every row has. */
  format: DatasetFormat;
  /** Every invalid row (empty unless `skipInvalid`). */
  issues: ValidationIssue[];
  /** Rows read, kept and dropped (`invalid`, `held_out`). */
  report: DatasetReport;
  /** The files read, in order. */
  files: string[];
  /** SHA-256 (hex) of each file's bytes, in order. */
  fileHashes: string[];
  /** The load options with defaults resolved (part of the fingerprint). */
  options: Required<Omit<LoadOptions, "testFraction">> & { testFraction: number | null };
}

/** Reads and validates every file of a dataset without throwing on bad rows (for a `validate` command). */
export async function validateDataset(
  store: FileStore,
  path: string,
  kind: DatasetKind,
  options: Pick<LoadOptions, "split" | "testFraction"> = {},
): Promise<
  { issues: ValidationIssue[]; read: number; format: DatasetFormat | null; files: string[] }
> {
  const split = options.testFraction ? "train" : options.split ?? "train";
  const files = await resolveDatasetFiles(store, path, split);
  const records: RawRecord[] = [];
  for (const file of files) records.push(...await readRecords(await store.readFile(file), file));
  const { issues, read, format } = validateRecords(records, kind);
  return { issues, read, format, files };
}

/**
 * Loads and validates a dataset of any kind.
 *
 * @throws ValidationError listing every bad row, unless `skipInvalid`
 * @throws Error when no row has a recognisable format, or the path or split does not exist
 */
export async function loadDataset(
  store: FileStore,
  path: string,
  kind: "preference",
  options?: LoadOptions,
): Promise<LoadedDataset<PreferenceRow>>;
/** Loads SFT or unpaired rows. */
export async function loadDataset(
  store: FileStore,
  path: string,
  kind: "sft" | "unpaired",
  options?: LoadOptions,
): Promise<LoadedDataset<SequenceRow>>;
/** Loads rows of a kind known only at run time. */
export async function loadDataset(
  store: FileStore,
  path: string,
  kind: DatasetKind,
  options?: LoadOptions,
): Promise<LoadedDataset<PreferenceRow | SequenceRow>>;
export async function loadDataset(
  store: FileStore,
  path: string,
  kind: DatasetKind,
  options: LoadOptions = {},
): Promise<LoadedDataset<PreferenceRow | SequenceRow>> {
  const resolved = {
    split: options.split ?? "train",
    testFraction: options.testFraction ?? null,
    seed: options.seed ?? 42,
    skipInvalid: options.skipInvalid ?? false,
  };
  const { testFraction } = resolved;
  if (testFraction !== null && !(testFraction > 0 && testFraction < 1)) {
    throw new RangeError(`testFraction must be between 0 and 1 (exclusive), got ${testFraction}`);
  }
  if (testFraction !== null && resolved.split !== "train" && resolved.split !== "test") {
    throw new Error(
      `with a held-out fraction the split is "train" or "test", not "${resolved.split}"`,
    );
  }
  const files = await resolveDatasetFiles(
    store,
    path,
    testFraction !== null ? "train" : resolved.split,
  );
  const records: RawRecord[] = [];
  const fileHashes: string[] = [];
  for (const file of files) {
    const bytes = await store.readFile(file);
    fileHashes.push(await sha256Hex(bytes));
    records.push(...await readRecords(bytes, file));
  }
  const validated = validateRecords(records, kind);
  if (validated.issues.length > 0 && !resolved.skipInvalid) {
    throw new ValidationError(validated.issues, path);
  }
  if (validated.format === null) {
    throw new DatasetError(
      validated.read === 0
        ? `${path}: the dataset is empty (no rows); give a file with at least one row`
        : `${path}: no row has the fields of a ${kind} dataset, so its format is unknown`,
    );
  }
  const report = newReport(validated.read);
  addDropped(report, "invalid", validated.issues.length);
  let rows = validated.rows;
  if (testFraction !== null) {
    const order = seededPermutation(rows.length, resolved.seed);
    const testCount = Math.ceil(testFraction * rows.length);
    const test = new Set(order.slice(0, testCount));
    const wantTest = resolved.split === "test";
    const kept = rows.filter((_, i) => test.has(i) === wantTest);
    if (kept.length === 0 && rows.length > 0) {
      throw new DatasetError(
        `${path}: holding out ${testFraction} of its ${rows.length} row${
          rows.length === 1 ? "" : "s"
        } leaves no ${wantTest ? "held-out" : "training"} row; lower --eval-fraction or add rows`,
      );
    }
    addDropped(report, "held_out", rows.length - kept.length);
    rows = kept;
  }
  return {
    kind,
    rows,
    format: validated.format,
    issues: validated.issues,
    report,
    files,
    fileHashes,
    options: resolved,
  };
}

/** Loads a preference (DPO) dataset: see {@link loadDataset}. */
export function loadPreferenceDataset(
  store: FileStore,
  path: string,
  options: LoadOptions = {},
): Promise<LoadedDataset<PreferenceRow>> {
  return loadDataset(store, path, "preference", options);
}

/** Loads an SFT dataset (`text`, `prompt` + `completion`, or `messages`): see {@link loadDataset}. */
export function loadSftDataset(
  store: FileStore,
  path: string,
  options: LoadOptions = {},
): Promise<LoadedDataset<SequenceRow>> {
  return loadDataset(store, path, "sft", options);
}

/** Loads an unpaired (KTO) dataset (`prompt`, `completion`, `label`): see {@link loadDataset}. */
export function loadUnpairedDataset(
  store: FileStore,
  path: string,
  options: LoadOptions = {},
): Promise<LoadedDataset<SequenceRow>> {
  return loadDataset(store, path, "unpaired", options);
}

/**
 * The fingerprint of a dataset as tokenized with `tokenizer` and `options`: file bytes, load
 * options, tokenization options with their defaults resolved (so `{}` and the explicit defaults
 * agree), and the tokenizer's files. Pass `null` as tokenizer for pre-tokenized data.
 */
export function fingerprintDataset(
  dataset: Pick<LoadedDataset<unknown>, "kind" | "fileHashes" | "options">,
  tokenizer: { sources: ReadonlyArray<{ name: string; bytes: Uint8Array }> } | null,
  options: SftTokenizeOptions & TruncationOptions = {},
): Promise<string> {
  const sft = dataset.kind === "sft";
  return fingerprint({
    fileHashes: dataset.fileHashes,
    options: {
      kind: dataset.kind,
      ...dataset.options,
      seed: dataset.options.testFraction === null ? null : dataset.options.seed,
      maxLength: options.maxLength === undefined ? 1024 : options.maxLength,
      maxPromptLength: options.maxPromptLength === undefined
        ? (sft ? null : 512)
        : options.maxPromptLength,
      truncationMode: options.truncationMode ?? "keep_end",
      completionOnlyLoss: sft ? options.completionOnlyLoss ?? true : null,
    },
    tokenizerSources: tokenizer?.sources ?? [],
  });
}
