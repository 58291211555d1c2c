/**
 * A seeded, resumable batch order. The order of epoch e is a pure function of (seed, e), and
 * batch k of the run is batch k mod n of epoch floor(k / n), so a run resumed at step k sees
 * exactly the batches the uninterrupted run would have seen, without replaying the first k.
 *
 * Length grouping follows HF's `LengthGroupedSampler`: shuffle, cut into mega-batches of
 * `megaBatchMultiplier * batchSize` examples, sort each by length (longest first) and slice
 * batches out of it, then move the batch holding the longest example to the front, so padding is
 * small and an out-of-memory error shows at the first step rather than late in the run.
 *
 * @module
 */

/** A small deterministic PRNG (mulberry32) over 32-bit state; the same seed gives the same stream. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes two integers into one 32-bit seed (so epoch 1 of seed 0 differs from epoch 0 of seed 1). */
export function mixSeed(a: number, b: number): number {
  let h = Math.imul((a >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b >>> 0, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}

/** A Fisher-Yates permutation of 0..n-1 from `seed`. */
export function seededPermutation(n: number, seed: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  const random = seededRandom(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** Options of {@link BatchSampler}. */
export interface SamplerOptions {
  /** Examples per batch (pairs, for preference data). */
  batchSize: number;
  /** Seed of the order. @default 42 */
  seed?: number;
  /** Shuffle each epoch; false keeps file order (and ignores `groupByLength`). @default true */
  shuffle?: boolean;
  /** Group examples of similar length into batches (needs `lengths`). @default false */
  groupByLength?: boolean;
  /** Mega-batch size in batches, for length grouping (HF's default). @default 50 */
  megaBatchMultiplier?: number;
  /** Drop the last incomplete batch of each epoch. @default false */
  dropLast?: boolean;
}

/**
 * Batches of example indices for any global step.
 *
 * @example
 * ```ts
 * const sampler = new BatchSampler(examples.length, { batchSize: 8, seed: 1 });
 * const indices = sampler.batch(step); // the same for the same step, before or after a resume
 * ```
 */
export class BatchSampler {
  /** Number of examples. */
  readonly size: number;
  /** Batches in one epoch. */
  readonly batchesPerEpoch: number;
  readonly #lengths: readonly number[] | undefined;
  readonly #options: Required<SamplerOptions>;
  #cachedEpoch = -1;
  #cachedBatches: number[][] = [];

  /**
   * A sampler of `examples` into batches of `options.batchSize`.
   *
   * @param examples the number of examples, or each example's length (tokens; for pairs, the
   *   longer of its two sequences), which length grouping needs
   */
  constructor(examples: number | readonly number[], options: SamplerOptions) {
    this.size = typeof examples === "number" ? examples : examples.length;
    this.#lengths = typeof examples === "number" ? undefined : examples;
    this.#options = {
      seed: 42,
      shuffle: true,
      groupByLength: false,
      megaBatchMultiplier: 50,
      dropLast: false,
      ...options,
    };
    const { batchSize, groupByLength } = this.#options;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
    }
    if (groupByLength && this.#lengths === undefined) {
      throw new Error("groupByLength needs each example's length: pass the lengths, not a count");
    }
    this.batchesPerEpoch = this.#options.dropLast
      ? Math.floor(this.size / batchSize)
      : Math.ceil(this.size / batchSize);
  }

  /** The epoch (from 0) that global batch `step` falls in. */
  epochOf(step: number): number {
    return Math.floor(step / this.batchesPerEpoch);
  }

  /** The example indices of global batch `step` (from 0). */
  batch(step: number): number[] {
    if (this.batchesPerEpoch === 0) {
      throw new Error("no complete batch: the dataset is smaller than a batch");
    }
    if (!Number.isInteger(step) || step < 0) {
      throw new RangeError(`step must be a non-negative integer, got ${step}`);
    }
    return [...this.epoch(this.epochOf(step))[step % this.batchesPerEpoch]];
  }

  /** All batches of one epoch, in order. */
  epoch(epoch: number): number[][] {
    if (epoch !== this.#cachedEpoch) {
      this.#cachedBatches = this.#build(epoch);
      this.#cachedEpoch = epoch;
    }
    return this.#cachedBatches;
  }

  #build(epoch: number): number[][] {
    const { batchSize, seed, shuffle, groupByLength, megaBatchMultiplier } = this.#options;
    const order = shuffle
      ? seededPermutation(this.size, mixSeed(seed, epoch))
      : Array.from({ length: this.size }, (_, i) => i);
    let batches: number[][];
    if (shuffle && groupByLength) {
      const lengths = this.#lengths!;
      const mega = batchSize * megaBatchMultiplier;
      const sorted: number[] = [];
      for (let start = 0; start < order.length; start += mega) {
        // Stable sort, longest first; ties keep the shuffled order.
        sorted.push(...order.slice(start, start + mega).sort((a, b) => lengths[b] - lengths[a]));
      }
      batches = chunk(sorted, batchSize).slice(0, this.batchesPerEpoch);
      let longest = 0;
      batches.forEach((b, i) => {
        if (lengths[b[0]] > lengths[batches[longest][0]]) longest = i;
      });
      [batches[0], batches[longest]] = [batches[longest], batches[0]];
    } else {
      batches = chunk(order, batchSize);
    }
    return batches.slice(0, this.batchesPerEpoch);
  }
}

function chunk(indices: number[], size: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < indices.length; i += size) out.push(indices.slice(i, i + size));
  return out;
}
