/**
 * What `deno task plan` reads of a run's inputs the way the stage reads them: the sequence length
 * it would allocate for a dataset (`--data`: tokenized as the stage tokenizes it, the longest
 * example or pair counts), and the precision it holds a model folder's frozen weights in.
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
import { mismatchedPairs, prepareUnpaired } from "./kto_cache.ts";
import { loadCheckpoint } from "../io/checkpoint.ts";
import { type FrozenDtypeChoice, storedDtype } from "../model/model_folder.ts";
import type { FrozenDtype } from "../model/params.ts";

/**
 * The precision a run holds `dir`'s frozen weights in under `choice`: the checkpoint's (as its
 * safetensors headers say, the rule the stages load by) for `auto`, f32 for `f32`. Only the
 * headers are parsed; no tensor is decoded.
 */
export async function frozenDtypeOfFolder(
  store: FileStore,
  dir: string,
  choice: FrozenDtypeChoice = "auto",
): Promise<FrozenDtype> {
  if (choice === "f32") return "f32";
  const headersRead = new Error("headers read");
  let dtype: FrozenDtype = "f32";
  try {
    await loadCheckpoint(store, dir, {
      checkHeaders: (tensors) => {
        dtype = storedDtype(tensors.values());
        throw headersRead;
      },
    });
  } catch (error) {
    if (error !== headersRead) throw error;
  }
  return dtype;
}

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
