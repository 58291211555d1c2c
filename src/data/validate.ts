/**
 * Row validation for every dataset kind. Two passes over the records: the first detects each
 * row's format from its fields, the dataset's format is that of the first row that has one; the
 * second checks every row against it. Each bad row yields exactly one issue, the first problem
 * found, as `file:line: field: problem`. Nothing here needs a tokenizer.
 *
 * @module
 */

import {
  checkMessages,
  checkString,
  checkTokenIds,
  checkWinRates,
  extractPrompt,
  type FieldProblem,
  isProblem,
  present,
  sameCompletion,
  typeName,
} from "./fields.ts";
import type { ValidationIssue } from "./issues.ts";
import type { RawRecord } from "./read.ts";
import type {
  DatasetFormat,
  DatasetKind,
  Message,
  PreferenceRow,
  RowSource,
  SequenceRow,
} from "./types.ts";

/** The rows of a dataset that passed validation, and an issue for each one that did not. */
export interface ValidatedRows<Row> {
  /** The rows that passed, in input order. */
  rows: Row[];
  /** One issue per row that did not. */
  issues: ValidationIssue[];
  /** The dataset's format (that of its first recognisable row), or null if no row had one. */
  format: DatasetFormat | null;
  /** Records read (valid or not). */
  read: number;
}

type Row = Record<string, unknown>;
/** A format guess for one row: a format, a mix of formats (a problem), or nothing recognisable. */
type Detected = DatasetFormat | FieldProblem | null;

const IDS = ["prompt_input_ids", "chosen_input_ids", "rejected_input_ids"];

function isList(value: unknown): boolean {
  return Array.isArray(value);
}

function detectPreference(row: Row): Detected {
  const ids = IDS.filter((k) => present(row, k));
  const text = ["chosen", "rejected"].filter((k) => present(row, k));
  if (ids.length > 0 && text.length > 0) {
    return {
      field: "row",
      problem: `mixes formats: text field ${text[0]} and pre-tokenized field ${ids[0]}`,
    };
  }
  if (ids.length > 0) return "pretokenized";
  if (text.length === 0) return null;
  const lists = ["prompt", ...text].filter((k) => present(row, k) && isList(row[k]));
  const strings = ["prompt", ...text].filter((k) => present(row, k) && typeof row[k] === "string");
  if (lists.length > 0 && strings.length > 0) {
    return {
      field: "row",
      problem: `mixes formats: ${strings[0]} is a string (standard) but ${lists[0]} is a ` +
        "list of messages (conversational)",
    };
  }
  const style = lists.length > 0 ? "conversational" : "standard";
  return `${style}_${present(row, "prompt") ? "explicit" : "implicit"}` as DatasetFormat;
}

function detectSequence(row: Row, kind: "sft" | "unpaired"): Detected {
  if (kind === "sft") {
    const fields = ["text", "messages", "completion"].filter((k) => present(row, k));
    if (fields.length > 1) {
      return { field: "row", problem: `mixes formats: has both ${fields[0]} and ${fields[1]}` };
    }
    if (fields[0] === "text") return "text";
    if (fields[0] === "messages") return "messages";
    if (fields.length === 0) return null;
  } else if (!present(row, "completion") && !present(row, "label")) return null;
  const keys = ["prompt", "completion"].filter((k) => present(row, k));
  const lists = keys.filter((k) => isList(row[k]));
  if (lists.length > 0 && lists.length < keys.length) {
    const other = keys.find((k) => !isList(row[k]))!;
    return {
      field: "row",
      problem: `mixes formats: ${other} is ${typeName(row[other])} but ${lists[0]} is a list of ` +
        "messages (conversational)",
    };
  }
  const conversational = lists.length > 0;
  if (kind === "unpaired") return conversational ? "conversational_unpaired" : "standard_unpaired";
  return conversational ? "conversational_prompt_completion" : "prompt_completion";
}

/** Checks one preference row against the dataset's format, and its optional win-rates. */
function checkPreference(
  row: Row,
  format: DatasetFormat,
  src: RowSource,
): PreferenceRow | FieldProblem {
  const pair = checkPair(row, format, src);
  if (isProblem(pair)) return pair;
  const winRates = checkWinRates(row);
  return isProblem(winRates) ? winRates : { ...pair, ...winRates };
}

function checkPair(
  row: Row,
  format: DatasetFormat,
  src: RowSource,
): PreferenceRow | FieldProblem {
  if (format === "pretokenized") {
    const prompt = checkTokenIds(row, "prompt_input_ids", true);
    if (isProblem(prompt)) return prompt;
    const chosen = checkTokenIds(row, "chosen_input_ids", false);
    if (isProblem(chosen)) return chosen;
    const rejected = checkTokenIds(row, "rejected_input_ids", false);
    if (isProblem(rejected)) return rejected;
    if (sameCompletion(chosen, rejected)) {
      return { field: "rejected_input_ids", problem: "identical to chosen_input_ids" };
    }
    return { ...src, kind: "tokenized", prompt, chosen, rejected };
  }
  const conversational = format.startsWith("conversational");
  const explicit = format.endsWith("explicit");
  const read = (key: string, allowEmpty: boolean) =>
    conversational ? checkMessages(row, key, allowEmpty) : checkString(row, key);
  let prompt: string | Message[] | FieldProblem = conversational ? [] : "";
  if (explicit) {
    prompt = read("prompt", true);
    if (isProblem(prompt)) return prompt;
  }
  let chosen = read("chosen", false);
  if (isProblem(chosen)) return chosen;
  let rejected = read("rejected", false);
  if (isProblem(rejected)) return rejected;
  // Empty strings are judged here, on the raw row, before any EOS is added.
  if (chosen.length === 0) return { field: "chosen", problem: "empty completion" };
  if (rejected.length === 0) return { field: "rejected", problem: "empty completion" };
  if (sameCompletion(chosen, rejected)) {
    return { field: "rejected", problem: "identical to chosen" };
  }
  if (!explicit) {
    ({ prompt, chosen, rejected } = extractPrompt<string | Message[]>(chosen, rejected));
    for (const [field, completion] of [["chosen", chosen], ["rejected", rejected]] as const) {
      if (completion.length === 0) {
        return {
          field,
          problem: "empty completion once the prompt shared with the other completion is removed",
        };
      }
    }
  }
  return conversational
    ? {
      ...src,
      kind: "conversational",
      prompt: prompt as Message[],
      chosen: chosen as Message[],
      rejected: rejected as Message[],
    }
    : {
      ...src,
      kind: "standard",
      prompt: prompt as string,
      chosen: chosen as string,
      rejected: rejected as string,
    };
}

/** Checks one SFT or unpaired row against the dataset's format. */
function checkSequence(
  row: Row,
  format: DatasetFormat,
  src: RowSource,
): SequenceRow | FieldProblem {
  if (format === "text") {
    const text = checkString(row, "text");
    if (isProblem(text)) return text;
    if (text.length === 0) return { field: "text", problem: "empty text" };
    return { ...src, kind: "standard", prompt: "", completion: text };
  }
  if (format === "messages") {
    const messages = checkMessages(row, "messages", false);
    if (isProblem(messages)) return messages;
    const last = messages.length - 1;
    if (messages[last].role !== "assistant") {
      return {
        field: `messages[${last}].role`,
        problem: `the last message must be from the assistant (it is the completion), got "${
          messages[last].role
        }"`,
      };
    }
    if (messages[last].content === "") {
      return { field: `messages[${last}].content`, problem: "empty completion" };
    }
    return {
      ...src,
      kind: "conversational",
      prompt: messages.slice(0, last),
      completion: [messages[last]],
    };
  }
  const conversational = format.startsWith("conversational");
  const read = (key: string, allowEmpty: boolean) =>
    conversational ? checkMessages(row, key, allowEmpty) : checkString(row, key);
  const prompt = read("prompt", true);
  if (isProblem(prompt)) return prompt;
  const completion = read("completion", false);
  if (isProblem(completion)) return completion;
  if (completion.length === 0) return { field: "completion", problem: "empty completion" };
  let label: boolean | undefined;
  if (format.endsWith("unpaired")) {
    if (row.label === undefined) return { field: "label", problem: "missing" };
    if (typeof row.label !== "boolean") {
      return { field: "label", problem: `expected true or false, got ${typeName(row.label)}` };
    }
    label = row.label;
  }
  const base = conversational
    ? {
      ...src,
      kind: "conversational" as const,
      prompt: prompt as Message[],
      completion: completion as Message[],
    }
    : {
      ...src,
      kind: "standard" as const,
      prompt: prompt as string,
      completion: completion as string,
    };
  return label === undefined ? base : { ...base, label };
}

function formatMismatch(
  row: Row,
  rowFormat: DatasetFormat,
  expected: DatasetFormat,
  first: RowSource,
): FieldProblem {
  const where = `${first.file}:${first.line}`;
  if (expected.endsWith("explicit") && rowFormat.endsWith("implicit") && !present(row, "prompt")) {
    return {
      field: "prompt",
      problem: `missing (the dataset is ${expected}, from its first row at ${where})`,
    };
  }
  return {
    field: "row",
    problem:
      `row is ${rowFormat} but the dataset is ${expected} (from its first row at ${where}); ` +
      "every row of a dataset must have the same format",
  };
}

/**
 * Validates the records of a dataset (all files together, in order) for one dataset kind.
 *
 * @example
 * ```ts
 * const records = await readRecords(bytes, "pairs.jsonl");
 * const { rows, issues } = validateRecords(records, "preference");
 * ```
 */
export function validateRecords(
  records: readonly RawRecord[],
  kind: "preference",
): ValidatedRows<PreferenceRow>;
/** Validates SFT or unpaired records. */
export function validateRecords(
  records: readonly RawRecord[],
  kind: "sft" | "unpaired",
): ValidatedRows<SequenceRow>;
/** Validates records of a kind known only at run time. */
export function validateRecords(
  records: readonly RawRecord[],
  kind: DatasetKind,
): ValidatedRows<PreferenceRow | SequenceRow>;
export function validateRecords(
  records: readonly RawRecord[],
  kind: DatasetKind,
): ValidatedRows<PreferenceRow | SequenceRow> {
  const detect = (row: Row) =>
    kind === "preference" ? detectPreference(row) : detectSequence(row, kind);
  const detected: Detected[] = records.map((r) =>
    r.value !== null && typeof r.value === "object" && !Array.isArray(r.value)
      ? detect(r.value as Row)
      : null
  );
  const firstIndex = detected.findIndex((d) => typeof d === "string");
  const format = firstIndex >= 0 ? detected[firstIndex] as DatasetFormat : null;
  const first = firstIndex >= 0 ? records[firstIndex] : undefined;
  const rows: Array<PreferenceRow | SequenceRow> = [];
  const issues: ValidationIssue[] = [];
  records.forEach((record, i) => {
    const src = { file: record.file, line: record.line };
    const report = (p: FieldProblem) => issues.push({ ...src, ...p });
    if (record.issue) return report(record.issue);
    const value = record.value;
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return report({
        field: "row",
        problem: `expected an object of named fields, got ${typeName(value)}`,
      });
    }
    const guess = detected[i];
    if (isProblem(guess)) return report(guess);
    if (format === null || first === undefined) {
      return report({ field: "row", problem: `no ${kind} fields (${expectedFields(kind)})` });
    }
    if (guess !== null && guess !== format) {
      return report(formatMismatch(value as Row, guess, format, first));
    }
    const checked = kind === "preference"
      ? checkPreference(value as Row, format, src)
      : checkSequence(value as Row, format, src);
    if (isProblem(checked)) return report(checked);
    rows.push(checked);
  });
  return { rows, issues, format, read: records.length };
}

function expectedFields(kind: DatasetKind): string {
  if (kind === "preference") {
    return "expected prompt/chosen/rejected, chosen/rejected, or prompt_input_ids/chosen_input_ids/rejected_input_ids";
  }
  if (kind === "sft") return "expected text, prompt/completion, or messages";
  return "expected prompt/completion/label";
}
