/**
 * Forward-only scoring: per-pair completion log-prob sums and token counts of a model, in batches.
 * The precompute stage scores with the reference; evaluation scores with the policy.
 *
 * @module
 */

import { collatePreference, type PreferenceExample } from "../data/mod.ts";
import type { SequenceScorer } from "./llama.ts";

/** Per-pair log-probs and completion token counts, in example order. */
export interface PairScores {
  chosenLogps: Float64Array;
  rejectedLogps: Float64Array;
  chosenTokens: Uint32Array;
  rejectedTokens: Uint32Array;
}

/**
 * Scores every pair with `model` (maxBatch ≥ 2 × batchSize, maxSeqLen ≥ the longest pair).
 * One readback per batch: scoring is not a training step.
 */
export async function scorePairs(
  model: SequenceScorer,
  examples: readonly PreferenceExample[],
  {
    batchSize,
    padTokenId,
    onProgress,
  }: { batchSize: number; padTokenId: number; onProgress?: (done: number) => void },
): Promise<PairScores> {
  const n = examples.length;
  const out: PairScores = {
    chosenLogps: new Float64Array(n),
    rejectedLogps: new Float64Array(n),
    chosenTokens: new Uint32Array(n),
    rejectedTokens: new Uint32Array(n),
  };
  for (let start = 0; start < n; start += batchSize) {
    const part = examples.slice(start, start + batchSize);
    const batch = collatePreference(part, { padTokenId });
    const P = part.length;
    model.setBatch(batch);
    model.forward();
    model.backend.submit();
    const logps = await model.backend.read(model.acts.seqLogps);
    for (let i = 0; i < P; i++) {
      out.chosenLogps[start + i] = logps[i];
      out.rejectedLogps[start + i] = logps[P + i];
      out.chosenTokens[start + i] = batch.tokenCounts[i];
      out.rejectedTokens[start + i] = batch.tokenCounts[P + i];
    }
    onProgress?.(Math.min(n, start + batchSize));
  }
  return out;
}
