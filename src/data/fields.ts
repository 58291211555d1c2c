/**
 * Field checks used by row validation. None of them needs a tokenizer: validation runs over the
 * whole file before any model or tokenizer is loaded. Each check returns the typed value or a
 * {@link FieldProblem} naming the exact field (`prompt[2].role`).
 *
 * @module
 */

import { type Message, MESSAGE_ROLES } from "./types.ts";

/** A problem with one field of a row. */
export interface FieldProblem {
  field: string;
  problem: string;
}

/** Whether a row field holds a value (`null` counts as absent, as in a Parquet null cell). */
export function present(row: Record<string, unknown>, key: string): boolean {
  return row[key] !== undefined && row[key] !== null;
}

/** A short name for a value's JSON type, for error messages. */
export function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  return typeof value === "string" ? "a string" : `a ${typeof value}`;
}

function problem(field: string, text: string): FieldProblem {
  return { field, problem: text };
}

/** The field as a string, or a problem if it is missing or of another type. */
export function checkString(row: Record<string, unknown>, key: string): string | FieldProblem {
  const value = row[key];
  if (value === undefined) return problem(key, "missing");
  if (typeof value !== "string") return problem(key, `expected a string, got ${typeName(value)}`);
  return value;
}

/**
 * The field as a list of chat messages (`{role, content}` with a known role and string content).
 * `allowEmpty` is false for completions, where an empty list is an empty completion.
 */
export function checkMessages(
  row: Record<string, unknown>,
  key: string,
  allowEmpty: boolean,
): Message[] | FieldProblem {
  const value = row[key];
  if (value === undefined) return problem(key, "missing");
  if (!Array.isArray(value)) {
    return problem(key, `expected a list of {role, content} messages, got ${typeName(value)}`);
  }
  if (value.length === 0 && !allowEmpty) return problem(key, "empty completion (no messages)");
  const messages: Message[] = [];
  for (let i = 0; i < value.length; i++) {
    const message = value[i];
    const at = `${key}[${i}]`;
    if (message === null || typeof message !== "object" || Array.isArray(message)) {
      return problem(at, `expected a {role, content} message, got ${typeName(message)}`);
    }
    const { role, content } = message as Record<string, unknown>;
    if (typeof role !== "string") {
      return problem(
        `${at}.role`,
        role === undefined ? "missing" : `expected a string, got ${typeName(role)}`,
      );
    }
    if (!(MESSAGE_ROLES as readonly string[]).includes(role)) {
      return problem(
        `${at}.role`,
        `unknown role "${role}" (expected one of ${MESSAGE_ROLES.join(", ")})`,
      );
    }
    if (typeof content !== "string") {
      return problem(
        `${at}.content`,
        content === undefined ? "missing" : `expected a string, got ${typeName(content)}`,
      );
    }
    messages.push({ role: role as Message["role"], content });
  }
  if (!allowEmpty && messages.every((m) => m.content === "")) {
    return problem(key, "empty completion (every message has empty content)");
  }
  return messages;
}

/** The largest token id a batch holds (Int32Array): a larger one would wrap. */
export const MAX_TOKEN_ID = 2 ** 31 - 1;

/** The field as a list of token ids (integers in [0, {@link MAX_TOKEN_ID}]). */
export function checkTokenIds(
  row: Record<string, unknown>,
  key: string,
  allowEmpty: boolean,
): number[] | FieldProblem {
  const value = row[key];
  if (value === undefined) return problem(key, "missing");
  if (!Array.isArray(value)) {
    return problem(key, `expected a list of token ids, got ${typeName(value)}`);
  }
  if (value.length === 0 && !allowEmpty) return problem(key, "empty completion (no token ids)");
  for (let i = 0; i < value.length; i++) {
    const id = value[i];
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0 || id > MAX_TOKEN_ID) {
      return problem(
        `${key}[${i}]`,
        `expected a token id (an integer in [0, ${MAX_TOKEN_ID}]), got ${
          JSON.stringify(id) ?? typeName(id)
        }`,
      );
    }
  }
  return value as number[];
}

/** A check's result is a problem rather than a value. */
export function isProblem(value: unknown): value is FieldProblem {
  return value !== null && typeof value === "object" && !Array.isArray(value) &&
    "problem" in value && "field" in value;
}

/** Whether two completions (strings, message lists or id lists) are the same. */
export function sameCompletion(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * TRL's `extract_prompt` for implicit-prompt rows: the longest common prefix of chosen and
 * rejected is the prompt; for text, a space just before the first difference stays with the
 * completions (so `"Q: A"`/`"Q: B"` gives prompt `"Q:"` and completions `" A"`/`" B"`).
 * Works on strings (by character) and on message lists (by whole message).
 */
export function extractPrompt<T extends string | Message[]>(
  chosen: T,
  rejected: T,
): { prompt: T; chosen: T; rejected: T } {
  const n = Math.min(chosen.length, rejected.length);
  let idx = 0;
  while (idx < n && sameCompletion(chosen[idx], rejected[idx])) idx++;
  if (typeof chosen === "string" && idx < n && idx > 0 && chosen[idx - 1] === " ") idx--;
  return {
    prompt: chosen.slice(0, idx) as T,
    chosen: chosen.slice(idx) as T,
    rejected: rejected.slice(idx) as T,
  };
}

/** SPPO's win-rate fields of a preference row: chosen then rejected. */
export const WIN_RATE_FIELDS = ["chosen_win_rate", "rejected_win_rate"] as const;

/**
 * The row's win-rates (SPPO's P̂(y ≻ π_t | x) of each completion): both absent, or both finite
 * numbers in [0, 1]; one without the other is a problem.
 */
export function checkWinRates(
  row: Record<string, unknown>,
): { chosenWinRate?: number; rejectedWinRate?: number } | FieldProblem {
  const [c, r] = WIN_RATE_FIELDS;
  if (!present(row, c) && !present(row, r)) return {};
  for (const [key, other] of [[c, r], [r, c]]) {
    const value = row[key];
    if (!present(row, key)) {
      return problem(key, `missing (${other} is given: give both or neither)`);
    }
    if (typeof value !== "number") return problem(key, `expected a number, got ${typeName(value)}`);
    if (!Number.isFinite(value) || value < 0 || value > 1) {
      return problem(key, `expected a win-rate in [0, 1], got ${value}`);
    }
  }
  return { chosenWinRate: row[c] as number, rejectedWinRate: row[r] as number };
}
