/**
 * Turning K sampled completions of a prompt into preference pairs, as the on-policy methods do:
 *
 * - iterative / online DPO: the best-rewarded completion against the worst (Xiong et al. 2024,
 *   "Iterative Preference Learning from Human Feedback"; Guo et al. 2024); a prompt whose
 *   rewards all tie gives no pair;
 * - RSO (Liu et al., ICLR 2024, Algorithm 1): statistical rejection sampling of the candidates
 *   towards the optimal policy π*(y|x) ∝ π_sft(y|x) exp(r(x,y)/β), then pairs of the accepted;
 * - SPPO (Wu et al., ICML 2024, §4): each completion's estimated win-rate against the current
 *   policy, the mean of its preference probabilities over the K samples; the pair is the highest
 *   win-rate against the lowest, both win-rates kept.
 *
 * @module
 */

/** A labelled pair: indices of the chosen and rejected completions among the K. */
export interface LabelledPair {
  chosen: number;
  rejected: number;
}

/**
 * The best against the worst of `rewards` (the first index among equals), or undefined when the
 * best and the worst tie (no preference to learn from).
 *
 * @example
 * ```ts
 * bestWorstPair([0.2, 0.9, 0.1, 0.9]); // { chosen: 1, rejected: 2 }
 * bestWorstPair([0.5, 0.5]); // undefined
 * ```
 */
export function bestWorstPair(rewards: readonly number[]): LabelledPair | undefined {
  if (rewards.length < 2) return undefined;
  let best = 0, worst = 0;
  rewards.forEach((r, i) => {
    if (r > rewards[best]) best = i;
    if (r < rewards[worst]) worst = i;
  });
  return rewards[best] === rewards[worst] ? undefined : { chosen: best, rejected: worst };
}

/**
 * RSO's statistical rejection sampling (Liu et al. 2024, Algorithm 1, as in their code): while
 * fewer than `count` are accepted, take the highest reward r_max among the remaining candidates
 * and go through them in order, accepting each with probability exp((r - r_max) / β) (one uniform
 * draw per candidate from `random`); an accepted candidate leaves the pool. The candidate with
 * r_max is always accepted, so each pass accepts at least one and the loop ends. Returns the
 * accepted indices in acceptance order.
 *
 * @param random uniform draws in [0, 1) (seeded, e.g. `seededRandom`).
 */
export function rsoAccept(
  rewards: readonly number[],
  beta: number,
  count: number,
  random: () => number,
): number[] {
  if (!(beta > 0)) throw new RangeError(`rsoAccept: beta must be > 0, got ${beta}`);
  const pool = rewards.map((_, i) => i);
  const accepted: number[] = [];
  const want = Math.min(count, rewards.length);
  while (accepted.length < want) {
    const rMax = Math.max(...pool.map((i) => rewards[i]));
    const taken = new Set<number>();
    for (const i of pool) {
      const u = random();
      if (u >= Math.exp((rewards[i] - rMax) / beta)) continue;
      accepted.push(i);
      taken.add(i);
      if (accepted.length === want) break;
    }
    for (let k = pool.length - 1; k >= 0; k--) if (taken.has(pool[k])) pool.splice(k, 1);
  }
  return accepted;
}

/**
 * Pairs of the accepted candidates, as RSO's "first-round ranking" builds them: consecutive
 * accepted samples (0,1), (2,3), ... labelled by their rewards; tied pairs are dropped.
 */
export function rankedPairs(accepted: readonly number[], rewards: readonly number[]) {
  const pairs: LabelledPair[] = [];
  for (let k = 0; k + 1 < accepted.length; k += 2) {
    const a = accepted[k], b = accepted[k + 1];
    if (rewards[a] === rewards[b]) continue;
    pairs.push(rewards[a] > rewards[b] ? { chosen: a, rejected: b } : { chosen: b, rejected: a });
  }
  return pairs;
}

/**
 * SPPO's win-rates: `prefer[i][j]` = P(y_i ≻ y_j | x) among the K samples of one prompt; the
 * win-rate of y_i against the policy is estimated by the mean over all K samples,
 * P̂(y_i ≻ π_t | x) = (1/K) Σ_j P(y_i ≻ y_j | x) (Wu et al. 2024, §4, with P(y ≻ y) = 1/2, as the
 * authors' scripts/compute_prob.py averages the K×K table), or with `against: "others"` by the
 * mean over the K−1 other samples, (1/(K−1)) Σ_{j≠i} P(y_i ≻ y_j | x): the estimate from
 * independent draws of π_t, which the self term would shrink towards 1/2 by a factor (K−1)/K.
 * The diagonal of `prefer` is then not read.
 */
export function winRates(
  prefer: readonly (readonly number[])[],
  options: { against?: "all" | "others" } = {},
): number[] {
  const K = prefer.length;
  if (options.against === "others") {
    if (K < 2) throw new RangeError(`winRates: "others" needs K >= 2 samples, got ${K}`);
    return prefer.map((row, i) => row.reduce((s, p, j) => (j === i ? s : s + p), 0) / (K - 1));
  }
  return prefer.map((row) => row.reduce((s, p) => s + p, 0) / K);
}

/** What Online DPO does with a prompt whose two samples got the same reward. */
export type TieRule = "drop" | "first";

/**
 * Online DPO's label of one prompt's two samples (Guo et al. 2024; TRL's OnlineDPOTrainer):
 * the higher reward is chosen. On a tie, "drop" gives no pair (as {@link bestWorstPair}: there is
 * no preference to learn), "first" chooses the first sample as TRL does (`mask = first >= second`).
 *
 * @example
 * ```ts
 * onlinePair(0.2, 0.7); // { chosen: 1, rejected: 0 }
 * onlinePair(0.5, 0.5); // undefined
 * onlinePair(0.5, 0.5, "first"); // { chosen: 0, rejected: 1 }
 * ```
 */
export function onlinePair(
  first: number,
  second: number,
  ties: TieRule = "drop",
): LabelledPair | undefined {
  if (first === second && ties === "drop") return undefined;
  return first >= second ? { chosen: 0, rejected: 1 } : { chosen: 1, rejected: 0 };
}

/**
 * SPPO's pair of one prompt (the authors' scripts/compute_prob.py): the sample of the highest
 * win-rate against that of the lowest, with both win-rates; undefined when they tie.
 *
 * @example
 * ```ts
 * winRatePair([0.7, 0.2, 0.6]); // { chosen: 0, rejected: 1, chosenWinRate: 0.7, rejectedWinRate: 0.2 }
 * ```
 */
export function winRatePair(
  rates: readonly number[],
): (LabelledPair & { chosenWinRate: number; rejectedWinRate: number }) | undefined {
  const pair = bestWorstPair(rates);
  if (!pair) return undefined;
  return { ...pair, chosenWinRate: rates[pair.chosen], rejectedWinRate: rates[pair.rejected] };
}
