/**
 * Preference pairs made as the DPO paper made its IMDb pairs (§6.1): the SFT model samples k
 * completions per prompt, and every pair of them is labelled by the ground-truth reward, the
 * higher-scoring completion chosen; pairs with tied rewards are dropped.
 *
 * @module
 */

import type { ChatTokenizer } from "../data/mod.ts";
import type { LlamaModel } from "../model/llama.ts";
import { generate } from "../eval/sample.ts";

/** A labelled pair in TRL's standard explicit format. */
export interface LabelledPair {
  prompt: string;
  chosen: string;
  rejected: string;
}

/** Options of {@link makePreferencePairs}. */
export interface PreferencePairOptions {
  /** Completions sampled per prompt; each prompt yields up to k(k-1)/2 pairs. @default 4 */
  samplesPerPrompt?: number;
  /** @default 12 */
  maxNewTokens?: number;
  /** Sampling temperature. @default 1 */
  temperature?: number;
  /** Seed of the sampling noise. @default 0 */
  seed?: number;
  /** Rows decoded at once. @default 64 */
  batchSize?: number;
  /** Stop after this many pairs. @default Infinity */
  maxPairs?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Token ids of a prompt as the tokenizer starts a sequence (BOS when it adds one). */
export function promptIds(tokenizer: ChatTokenizer, prompt: string): number[] {
  const ids = tokenizer.encode(prompt);
  return tokenizer.addsBos && tokenizer.bosTokenId !== null ? [tokenizer.bosTokenId, ...ids] : ids;
}

/** The text of a generated completion, without its EOS, with TRL's leading space. */
export function completionText(tokenizer: ChatTokenizer, tokens: readonly number[]): string {
  const eos = tokenizer.eosTokenId;
  const body = eos !== null && tokens.at(-1) === eos ? tokens.slice(0, -1) : tokens;
  return " " + tokenizer.decode(body).trim();
}

/**
 * Samples `samplesPerPrompt` completions for each prompt with `model` and labels every pair with
 * `reward(completion, prompt)`. Pairs whose completions are identical or whose rewards tie are
 * dropped. Prompts are processed in order, pairs within a prompt in index order.
 */
export async function makePreferencePairs(
  model: LlamaModel,
  tokenizer: ChatTokenizer,
  prompts: readonly string[],
  reward: (completion: string, prompt: string) => number,
  options: PreferencePairOptions = {},
): Promise<LabelledPair[]> {
  const k = options.samplesPerPrompt ?? 4;
  const repeated = prompts.flatMap((p) => Array.from({ length: k }, () => promptIds(tokenizer, p)));
  const generations = await generate(model, repeated, {
    maxNewTokens: options.maxNewTokens ?? 12,
    temperature: options.temperature ?? 1,
    seed: options.seed ?? 0,
    batchSize: options.batchSize ?? 64,
    eosTokenIds: tokenizer.eosTokenId === null ? [] : [tokenizer.eosTokenId],
    padTokenId: tokenizer.padTokenId,
    onProgress: options.onProgress,
  });
  const pairs: LabelledPair[] = [];
  const maxPairs = options.maxPairs ?? Infinity;
  prompts.forEach((prompt, p) => {
    const texts = generations.slice(p * k, (p + 1) * k).map((g) =>
      completionText(tokenizer, g.tokens)
    );
    const scores = texts.map((t) => reward(t, prompt));
    for (let i = 0; i < k; i++) {
      for (let j = i + 1; j < k; j++) {
        if (pairs.length >= maxPairs) return;
        if (
          texts[i] === texts[j] || scores[i] === scores[j] || texts[i] === " " || texts[j] === " "
        ) {
          continue;
        }
        const [chosen, rejected] = scores[i] > scores[j]
          ? [texts[i], texts[j]]
          : [texts[j], texts[i]];
        pairs.push({ prompt, chosen, rejected });
      }
    }
  });
  return pairs;
}
