/**
 * KTO's held-out metrics (TRL's names without the eval_ prefix): the policy scores each held-out
 * example and its mismatched pair; the reference numbers come from the cache.
 *
 * @module
 */

import type { KtoLossSpec } from "../backend/mod.ts";
import type { PreferenceExample, SequenceExample } from "../data/mod.ts";
import type { LlamaModel } from "../model/llama.ts";
import { ktoLossWith } from "../backend/kto_loss.ts";
import { scorePairs } from "../model/scoring.ts";

/** KTO eval metrics on held-out examples (TRL's names without the eval_ prefix). */
export async function evaluateUnpaired(
  model: LlamaModel,
  pairs: readonly PreferenceExample[],
  examples: readonly SequenceExample[],
  padTokenId: number,
  batchSize: number,
  { spec, reference }: { spec: KtoLossSpec; reference: (i: number) => [number, number] },
): Promise<Record<string, number>> {
  // scorePairs puts 2 × batchSize rows in a forward; the model holds batchSize.
  const policy = await scorePairs(model, pairs, {
    batchSize: Math.max(1, Math.floor(batchSize / 2)),
    padTokenId,
  });
  const refs = examples.map((_, i) => reference(i));
  const r = ktoLossWith(
    spec,
    policy.chosenLogps,
    policy.rejectedLogps,
    refs.map((x) => x[0]),
    refs.map((x) => x[1]),
    examples.map((e) => Boolean(e.label)),
  );
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const pick = <T>(xs: ArrayLike<T>, label: boolean) =>
    Array.from(xs).filter((_, i) => Boolean(examples[i].label) === label);
  const out: Record<string, number> = { loss: mean(r.losses), kl: r.kl };
  const chosen = pick(r.rewards, true), rejected = pick(r.rewards, false);
  if (chosen.length) out["rewards/chosen"] = mean(chosen);
  if (rejected.length) out["rewards/rejected"] = mean(rejected);
  if (chosen.length && rejected.length) {
    out["rewards/margins"] = out["rewards/chosen"] - out["rewards/rejected"];
  }
  if (chosen.length) out["logps/chosen"] = mean(pick(policy.chosenLogps, true) as number[]);
  if (rejected.length) out["logps/rejected"] = mean(pick(policy.chosenLogps, false) as number[]);
  return out;
}
