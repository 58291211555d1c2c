/**
 * Prompt files: JSON lines with a "prompt" string each (other fields ignored), as evaluation,
 * sampling and pair making read them; a file not named `.jsonl` or `.json` may also hold one
 * prompt per non-empty line.
 *
 * @module
 */

import type { FileStore } from "../io/fs.ts";

/** A prompts file that cannot be read: the message names `file:line` and what is wrong. */
export class PromptsError extends Error {
  /** An error whose message names the file, the line and what is wrong. */
  constructor(message: string) {
    super(message);
    this.name = "PromptsError";
  }
}

/** Options of {@link readPrompts}. */
export interface ReadPromptsOptions {
  /** Keep each distinct prompt once, in first-seen order. @default false */
  unique?: boolean;
  /** Stop after this many prompts. @default all */
  limit?: number;
}

/**
 * Reads the prompts of `path`.
 * @throws PromptsError naming file:line for a missing file, bad JSON, a missing prompt, or a file
 *   without prompts.
 */
export async function readPrompts(
  store: FileStore,
  path: string,
  { unique = false, limit = Infinity }: ReadPromptsOptions = {},
): Promise<string[]> {
  if (!await store.exists(path)) throw new PromptsError(`${path}: no such prompts file`);
  const text = new TextDecoder().decode(await store.readFile(path));
  const jsonLines = /\.jsonl?$/i.test(path);
  const prompts: string[] = [];
  const seen = new Set<string>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length && prompts.length < limit; i++) {
    const line = lines[i];
    if (line.trim() === "") continue;
    let prompt: unknown = line;
    if (jsonLines) {
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch (error) {
        throw new PromptsError(`${path}:${i + 1}: invalid JSON (${(error as Error).message})`);
      }
      prompt = (row as { prompt?: unknown } | null)?.prompt;
      if (typeof prompt !== "string") {
        throw new PromptsError(`${path}:${i + 1}: expected an object with a "prompt" string`);
      }
    }
    if (unique && seen.has(prompt as string)) continue;
    seen.add(prompt as string);
    prompts.push(prompt as string);
  }
  if (prompts.length === 0) throw new PromptsError(`${path}: holds no prompts`);
  return prompts;
}
