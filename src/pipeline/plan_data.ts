/**
 * The sequence length a stage would allocate for a dataset, for `deno task plan --data`: the
 * data is read and tokenized as the stage reads it, and the longest example (pair) counts.
 *
 * @module
 */

import type { FileStore } from "../io/fs.ts";
import {
  longestPair,
  longestSequence,
  preparePairs,
  prepareSftSplit,
  type SplitSpec,
  type TokenOptions,
} from "../data/prepare.ts";
import { loadTokenizer } from "../data/tokenizer.ts";
import { mismatchedPairs, prepareUnpaired } from "./kto.ts";

/** The longest sequence of `data` as stage `stage` tokenizes it with `model`'s tokenizer. */
export async function longestOfData(
  store: FileStore,
  stage: "sft" | "dpo" | "kto" | "precompute",
  model: string,
  data: SplitSpec,
  tokenOptions: TokenOptions,
): Promise<number> {
  if (stage === "sft") {
    const tokenizer = await loadTokenizer(store, model);
    return longestSequence((await prepareSftSplit(store, data, tokenizer, tokenOptions)).examples);
  }
  if (stage === "kto") {
    const { prepared } = await prepareUnpaired(store, model, data, undefined, tokenOptions);
    return longestPair(prepared.sections.flatMap((s) => mismatchedPairs(s.examples)));
  }
  const { prepared } = await preparePairs(store, model, data, undefined, tokenOptions);
  return longestPair(prepared.sections.flatMap((s) => s.examples));
}
