/**
 * Tokenization of validated rows with TRL's length limits. `maxPromptLength` shortens the prompt
 * (`truncationMode` says which end survives); then each completion is cut at its end so that
 * prompt + completion fits `maxLength`. A row whose prompt alone leaves no room for a completion
 * token is dropped (`too_long`); every drop and every truncation is counted in the report.
 *
 * @module
 */

import { encodeConversation, type EncodedRow, encodeStandard, TemplateMismatch } from "./encode.ts";
import { addDropped, type DatasetReport, newReport } from "./issues.ts";
import type { ChatTokenizer } from "./tokenizer.ts";
import type { PreferenceExample, PreferenceRow, SequenceExample, SequenceRow } from "./types.ts";

/** Which end of an over-long prompt is kept. */
export type TruncationMode = "keep_start" | "keep_end";

/** Length limits, as TRL's `max_length`, `max_prompt_length` and `truncation_mode`. */
export interface TruncationOptions {
  /** Most tokens of prompt + completion; null for no limit. @default 1024 */
  maxLength?: number | null;
  /** Most tokens of the prompt; null for no limit. @default 512 for preference and unpaired data, null for SFT */
  maxPromptLength?: number | null;
  /** Which end of a too-long prompt is kept; completions always keep their start. @default "keep_end" */
  truncationMode?: TruncationMode;
}

/** Options of {@link tokenizeSft}. */
export interface SftTokenizeOptions extends TruncationOptions {
  /** Mask the prompt out of the loss (TRL's `completion_only_loss`). @default true */
  completionOnlyLoss?: boolean;
}

/** Tokenized examples and what happened to the rows. */
export interface Tokenized<Example> {
  /** The tokenized examples, in row order. */
  examples: Example[];
  /** Rows read, kept, dropped and truncated. */
  report: DatasetReport;
}

interface Limits {
  maxLength: number;
  maxPromptLength: number;
  mode: TruncationMode;
}

function limits(options: TruncationOptions, defaultPrompt: number | null): Limits {
  const maxLength = options.maxLength === undefined ? 1024 : options.maxLength;
  const maxPrompt = options.maxPromptLength === undefined ? defaultPrompt : options.maxPromptLength;
  for (const [name, value] of [["maxLength", maxLength], ["maxPromptLength", maxPrompt]] as const) {
    if (value !== null && (!Number.isInteger(value) || value < 1)) {
      throw new RangeError(`${name} must be a positive integer or null, got ${value}`);
    }
  }
  const mode = options.truncationMode ?? "keep_end";
  if (mode !== "keep_start" && mode !== "keep_end") {
    throw new RangeError(`truncationMode must be keep_start or keep_end, got ${mode}`);
  }
  return { maxLength: maxLength ?? Infinity, maxPromptLength: maxPrompt ?? Infinity, mode };
}

/**
 * Applies the limits to one prompt and its completions; null when no completion token fits.
 * `truncated` tells whether any ids were removed.
 */
export function truncateRow(
  promptIds: readonly number[],
  completionIds: ReadonlyArray<readonly number[]>,
  options: TruncationOptions = {},
): { promptIds: number[]; completionIds: number[][]; truncated: boolean } | null {
  const { maxLength, maxPromptLength, mode } = limits(options, null);
  let prompt = [...promptIds];
  if (prompt.length > maxPromptLength) {
    prompt = mode === "keep_end"
      ? prompt.slice(prompt.length - maxPromptLength)
      : prompt.slice(0, maxPromptLength);
  }
  const room = maxLength - prompt.length;
  if (room < 1) return null;
  const completions = completionIds.map((ids) => ids.slice(0, room));
  const truncated = prompt.length < promptIds.length ||
    completions.some((ids, i) => ids.length < completionIds[i].length);
  return { promptIds: prompt, completionIds: completions, truncated };
}

/** Encodes rows, truncates and counts; `build` makes an example from the kept ids. */
function run<Row extends { file: string; line: number }, Example>(
  rows: readonly Row[],
  encode: (row: Row) => EncodedRow,
  limit: Limits,
  build: (row: Row, prompt: number[], completions: number[][]) => Example,
): Tokenized<Example> {
  const report = newReport(rows.length);
  const examples: Example[] = [];
  const options = {
    maxLength: Number.isFinite(limit.maxLength) ? limit.maxLength : null,
    maxPromptLength: Number.isFinite(limit.maxPromptLength) ? limit.maxPromptLength : null,
    truncationMode: limit.mode,
  };
  for (const row of rows) {
    let encoded: EncodedRow;
    try {
      encoded = encode(row);
    } catch (error) {
      if (error instanceof TemplateMismatch) {
        addDropped(report, "template_mismatch");
        continue;
      }
      throw new Error(`${row.file}:${row.line}: ${(error as Error).message}`, { cause: error });
    }
    if (encoded.prefixMismatch) report.prefixMismatch++;
    if (encoded.completionIds.some((ids) => ids.length === 0)) {
      addDropped(report, "empty_completion");
      continue;
    }
    const fitted = truncateRow(encoded.promptIds, encoded.completionIds, options);
    if (fitted === null) {
      addDropped(report, "too_long");
      continue;
    }
    if (fitted.truncated) report.truncated++;
    examples.push(build(row, fitted.promptIds, fitted.completionIds));
  }
  return { examples, report };
}

/**
 * Tokenizes validated preference rows into prompt, chosen and rejected ids. Pre-tokenized rows
 * are used exactly as given (no BOS or EOS added), then truncated like the others.
 *
 * @example
 * ```ts
 * const { examples, report } = tokenizePreference(dataset.rows, tokenizer, { maxLength: 512 });
 * ```
 */
export function tokenizePreference(
  rows: readonly PreferenceRow[],
  tokenizer: ChatTokenizer,
  options: TruncationOptions = {},
): Tokenized<PreferenceExample> {
  return run(
    rows,
    (row) => {
      if (row.kind === "tokenized") {
        return {
          promptIds: [...row.prompt],
          completionIds: [[...row.chosen], [...row.rejected]],
          prefixMismatch: false,
        };
      }
      return row.kind === "standard"
        ? encodeStandard(tokenizer, row.prompt, [row.chosen, row.rejected])
        : encodeConversation(tokenizer, row.prompt, [row.chosen, row.rejected]);
    },
    limits(options, 512),
    (row, promptIds, [chosenIds, rejectedIds]) => ({
      file: row.file,
      line: row.line,
      promptIds,
      chosenIds,
      rejectedIds,
      ...(row.chosenWinRate === undefined
        ? {}
        : { chosenWinRate: row.chosenWinRate, rejectedWinRate: row.rejectedWinRate }),
    }),
  );
}

function encodeSequence(row: SequenceRow, tokenizer: ChatTokenizer): EncodedRow {
  return row.kind === "standard"
    ? encodeStandard(tokenizer, row.prompt, [row.completion])
    : encodeConversation(tokenizer, row.prompt, [row.completion]);
}

/**
 * Tokenizes SFT rows. `text` rows are all completion (after BOS); prompt-completion and `messages`
 * rows have their prompt masked out of the loss unless `completionOnlyLoss` is false, in which
 * case every token after the first counts.
 */
export function tokenizeSft(
  rows: readonly SequenceRow[],
  tokenizer: ChatTokenizer,
  options: SftTokenizeOptions = {},
): Tokenized<SequenceExample> {
  const completionOnly = options.completionOnlyLoss ?? true;
  return run(
    rows,
    (row) => encodeSequence(row, tokenizer),
    limits(options, null),
    (row, prompt, [completion]) => {
      if (completionOnly || prompt.length === 0) {
        return { file: row.file, line: row.line, promptIds: prompt, completionIds: completion };
      }
      // The first token is never predicted, so it is the only one left out of the loss.
      return {
        file: row.file,
        line: row.line,
        promptIds: prompt.slice(0, 1),
        completionIds: [...prompt.slice(1), ...completion],
      };
    },
  );
}

/** Tokenizes unpaired (KTO) rows; each example keeps its `label`. */
export function tokenizeUnpaired(
  rows: readonly SequenceRow[],
  tokenizer: ChatTokenizer,
  options: TruncationOptions = {},
): Tokenized<SequenceExample> {
  return run(
    rows,
    (row) => encodeSequence(row, tokenizer),
    limits(options, 512),
    (row, promptIds, [completionIds]) => ({
      file: row.file,
      line: row.line,
      promptIds,
      completionIds,
      label: row.label ?? false,
    }),
  );
}
