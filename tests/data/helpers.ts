/** Shared helpers of the data tests: the word-level tokenizer fixture and small file builders. */

import { TokenizerLoader } from "@lenml/tokenizers";
import { HfTokenizer } from "../../src/data/tokenizer.ts";

const fixtureDir = new URL("../fixtures/data_tokenizer/", import.meta.url);

/** The parsed fixture files (a word-level tokenizer: lowercases, splits words and punctuation). */
export async function fixtureJson(): Promise<
  { json: Record<string, unknown>; config: Record<string, unknown> }
> {
  const json = JSON.parse(await Deno.readTextFile(new URL("tokenizer.json", fixtureDir)));
  const config = JSON.parse(await Deno.readTextFile(new URL("tokenizer_config.json", fixtureDir)));
  return { json, config };
}

/** The fixture tokenizer: `<s>`=1 (prepended), `</s>`=2, `<pad>`=3, chat template with `<|end|>`. */
export async function fixtureTokenizer(
  configOverrides: Record<string, unknown> = {},
): Promise<HfTokenizer> {
  const { json, config } = await fixtureJson();
  return HfTokenizer.fromJson(json, { ...config, ...configOverrides });
}

/** The fixture folder as a path for a FileStore. */
export const FIXTURE_TOKENIZER_DIR =
  new URL("../fixtures/data_tokenizer", import.meta.url).pathname;

/**
 * A tokenizer folder read by `@lenml/tokenizers`, a separately kept port of transformers.js's
 * tokenizers (its `AutoTokenizer` class choice and chat templates), to check ours against.
 */
export async function lenmlTokenizer(
  dir: string,
): Promise<ReturnType<typeof TokenizerLoader.fromPreTrained>> {
  const read = async (name: string) => JSON.parse(await Deno.readTextFile(`${dir}/${name}`));
  return TokenizerLoader.fromPreTrained({
    tokenizerJSON: await read("tokenizer.json"),
    tokenizerConfig: await read("tokenizer_config.json"),
  });
}

/** JSON Lines text of some rows. */
export function jsonl(rows: unknown[]): string {
  return rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
}
