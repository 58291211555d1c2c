/**
 * The reward interface of the on-policy stages: a reward is `(prompt, completion) -> number`
 * (sync or async), and a pairwise judge says how likely completion `a` is preferred to `b`. A
 * module that gives only a reward is judged by the Bradley-Terry probability of its two rewards,
 * `sigmoid(r(a) - r(b))` (Bradley & Terry 1952; the preference model of DPO, Rafailov et al. 2023,
 * eq. 1); a module may give its own `prefer(prompt, a, b)`.
 *
 * Every value a user's function returns is checked: a throw or a non-finite number becomes a
 * {@link RewardError} naming the prompt's index, so a run stops cleanly there (exit 1).
 *
 * @module
 */

import { sentimentReward } from "../world/reward.ts";

/** A scalar reward of a completion given its prompt (higher is better). */
export type RewardFunction = (prompt: string, completion: string) => number | Promise<number>;

/** P(a preferred to b | prompt), in [0, 1]. */
export type PreferFunction = (
  prompt: string,
  a: string,
  b: string,
) => number | Promise<number>;

/** A reward and, optionally, its own pairwise judge (a user module: default export + `prefer`). */
export interface RewardModule {
  /** Where it came from (a module path, or "world"), for messages and manifests. */
  source: string;
  /** The reward. */
  reward: RewardFunction;
  /** Its judge; absent = the Bradley-Terry probability of the two rewards. */
  prefer?: PreferFunction;
}

/** A reward (or judge) failed or gave a non-finite value (exit 1: the run stops there). */
export class RewardError extends Error {
  constructor(
    message: string,
    /** The 0-based index of the prompt whose completion failed. */
    readonly promptIndex: number,
  ) {
    super(message);
    this.name = "RewardError";
  }
}

/** The embedded world's ground-truth reward (src/world/reward.ts) as a reward module. */
export const WORLD_REWARD: RewardModule = {
  source: "world",
  reward: (prompt, completion) => sentimentReward(completion, prompt),
};

/** sigmoid(x), stable for large |x|. */
function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** The Bradley-Terry probability that the completion of reward `ra` beats that of `rb`. */
export function bradleyTerry(ra: number, rb: number): number {
  return sigmoid(ra - rb);
}

async function checked(
  what: string,
  source: string,
  promptIndex: number,
  fn: () => number | Promise<number>,
  range?: [number, number],
): Promise<number> {
  let value: unknown;
  try {
    value = await fn();
  } catch (error) {
    throw new RewardError(
      `${what} of ${source} threw on prompt ${promptIndex}: ${(error as Error)?.message ?? error}`,
      promptIndex,
    );
  }
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new RewardError(
      `${what} of ${source} returned ${
        typeof value === "number" ? value : `a ${typeof value} (${String(value)})`
      } on prompt ${promptIndex}: it must return a finite number`,
      promptIndex,
    );
  }
  if (range && !(value >= range[0] && value <= range[1])) {
    throw new RewardError(
      `${what} of ${source} returned ${value} on prompt ${promptIndex}: a probability must be in [0, 1]`,
      promptIndex,
    );
  }
  return value;
}

/** One completion to score: its prompt's index (for messages), the prompt and the completion. */
export interface ScoredItem {
  promptIndex: number;
  prompt: string;
  completion: string;
}

/**
 * The rewards of `items`, in order, called one after another (so a stateful or rate-limited
 * module sees a fixed order and a rerun gets the same values).
 * @throws RewardError naming the prompt index of the first failure.
 */
export async function scoreRewards(
  module: RewardModule,
  items: readonly ScoredItem[],
): Promise<number[]> {
  const out: number[] = [];
  for (const it of items) {
    out.push(
      await checked(
        "the reward",
        module.source,
        it.promptIndex,
        () => module.reward(it.prompt, it.completion),
      ),
    );
  }
  return out;
}

/**
 * P(a preferred to b): the module's `prefer` when it has one, else the Bradley-Terry probability
 * of the rewards `ra` and `rb` (already computed by {@link scoreRewards}).
 */
export async function preferenceProbability(
  module: RewardModule,
  promptIndex: number,
  prompt: string,
  a: { completion: string; reward: number },
  b: { completion: string; reward: number },
): Promise<number> {
  if (!module.prefer) return bradleyTerry(a.reward, b.reward);
  const prefer = module.prefer;
  return await checked(
    "prefer",
    module.source,
    promptIndex,
    () => prefer(prompt, a.completion, b.completion),
    [0, 1],
  );
}
