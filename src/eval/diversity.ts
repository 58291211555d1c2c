/**
 * Diversity of a policy's samples, beside reward and KL in the evaluation (the DPO design card:
 * DPO lowers entropy and diversity more than PPO does).
 *
 * - Per-token entropy: the mean over sampled completion tokens of H(π(·|x, y_<t)) = −Σ_v p_v log
 *   p_v, the entropy of the policy's next-token distribution at the position that sampled the
 *   token. On the device it comes out of the KL kernel (src/eval/kl.ts): against all-zero logits
 *   (the uniform distribution u over V tokens), KL(p ‖ u) = Σ p log p + log V, so
 *   H(p) = log V − KL(p ‖ u). {@link entropyRows} is the host reference of one row.
 * - distinct-n (Li et al. 2016): unique n-grams over total n-grams, pooled over the completions
 *   (each completion's own n-grams: none across completions), on token ids.
 *
 * @module
 */

/** −Σ p log p of softmax(logits) (one row), max-subtracted, in float64: the host reference. */
export function rowEntropy(logits: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i] - max);
  const lse = max + Math.log(z);
  let h = 0;
  for (let i = 0; i < logits.length; i++) {
    const logP = logits[i] - lse;
    h -= Math.exp(logP) * logP;
  }
  return h;
}

/**
 * Entropy of each sequence, Σ over its `tokens` scored positions of H, from the sequence sum of
 * KL(p ‖ uniform) over the same positions: tokens · log V − klUniform. Clamped at 0 (float32
 * rounding of a one-hot row can give −1e-7).
 */
export function entropyFromUniformKl(klUniform: number, tokens: number, V: number): number {
  return Math.max(0, tokens * Math.log(V) - klUniform);
}

/**
 * distinct-n of `sequences`: the number of distinct n-grams over the number of n-grams, pooled
 * over every sequence (n-grams stay inside one sequence); 0 when no sequence has n tokens.
 */
export function distinctN(sequences: ReadonlyArray<readonly number[]>, n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`distinctN: n must be >= 1, got ${n}`);
  const seen = new Set<string>();
  let total = 0;
  for (const s of sequences) {
    for (let i = 0; i + n <= s.length; i++) {
      seen.add(s.slice(i, i + n).join(","));
      total++;
    }
  }
  return total === 0 ? 0 : seen.size / total;
}
