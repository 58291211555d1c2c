/**
 * A length-biased judge for the length-exploitation experiment (`deno task frontier --experiment
 * length`): it scores a completion by the ground-truth sentiment score plus a small bonus per
 * token, as preference labellers (people and LLM judges) are known to favour longer answers. DPO
 * trained on its labels learns part of that bias; the experiment shows how much, and which loss
 * variants (R-DPO's length term, SimPO's length-normalised reward) resist it.
 *
 * @module
 */

import { sentimentScore, sentimentTokens } from "./reward.ts";

/** A preference pair in TRL's explicit format (completions keep their leading space). */
export interface JudgedPair {
  prompt: string;
  chosen: string;
  rejected: string;
}

/** The judge's bonus per completion token (in sentiment-score units) of the shipped experiment. */
export const DEFAULT_LENGTH_BONUS = 0.2;

/** The judge's score: `sentimentScore(completion, prompt) + bonus × tokens(completion)`. */
export function lengthBiasedScore(completion: string, prompt: string, bonus: number): number {
  return sentimentScore(completion, prompt) + bonus * sentimentTokens(completion).length;
}

/** What {@link relabelByLength} did. */
export interface Relabelling {
  /** The pairs in input order, chosen by the judge; ties dropped. */
  pairs: JudgedPair[];
  /** Pairs whose order the judge reversed. */
  flipped: number;
  /** Pairs dropped because the judge scored both completions the same. */
  ties: number;
  /** Mean chosen length over mean rejected length (tokens), under the judge's labels. */
  lengthRatio: number;
}

/**
 * Relabels pairs with the length-biased judge: each pair's two completions are re-ordered by
 * {@link lengthBiasedScore}; pairs it scores equally are dropped.
 *
 * @example
 * ```ts
 * const { pairs } = relabelByLength([{ prompt: "the food was", chosen: " good .",
 *   rejected: " fine , and we went there for lunch ." }], 0.2);
 * // " good ." scores 1 + 0.4; the longer neutral one 0 + 1.8: the judge prefers it
 * ```
 */
export function relabelByLength(rows: readonly JudgedPair[], bonus: number): Relabelling {
  if (!(bonus >= 0)) throw new RangeError(`length bonus: expected a number ≥ 0, got ${bonus}`);
  const pairs: JudgedPair[] = [];
  let flipped = 0;
  let ties = 0;
  let chosenTokens = 0;
  let rejectedTokens = 0;
  for (const row of rows) {
    const a = lengthBiasedScore(row.chosen, row.prompt, bonus);
    const b = lengthBiasedScore(row.rejected, row.prompt, bonus);
    if (Math.abs(a - b) < 1e-9) {
      ties++;
      continue;
    }
    const pair = a > b ? { ...row } : { ...row, chosen: row.rejected, rejected: row.chosen };
    if (a < b) flipped++;
    chosenTokens += sentimentTokens(pair.chosen).length;
    rejectedTokens += sentimentTokens(pair.rejected).length;
    pairs.push(pair);
  }
  return { pairs, flipped, ties, lengthRatio: chosenTokens / Math.max(1, rejectedTokens) };
}
