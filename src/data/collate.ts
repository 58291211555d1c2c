/**
 * Collation: tokenized examples to the padded (rows, T) arrays the engine consumes. Preference
 * batches put the P chosen sequences first and the P rejected ones after them (rows 0..P-1 chosen,
 * P..2P-1 rejected, pair i in rows i and P+i), so one forward pass serves both and the loss reads
 * the two halves. Padding is on the right.
 *
 * `targets[r, t]` is the token the model should predict at position t: `inputIds[r, t+1]` where
 * token t+1 is a completion token, -1 elsewhere (prompt, padding, last column). The sum of
 * `log_softmax(logits[r, t])[targets[r, t]]` over t with a target is the completion log-prob.
 *
 * @module
 */

import type { PreferenceExample, SequenceExample } from "./types.ts";

/** A padded batch; every (rows, T) array is row-major. */
/**
 * The batch the engine consumes, from collation to the model and the trainer: token ids, targets,
 * the shape and the token counts a length-normalised loss divides by.
 */
export interface TokenBatch {
  /** Token ids, (rows, T), padded with the pad id. */
  inputIds: Int32Array;
  /** Next-token targets, (rows, T): the completion token at t+1, or -1 where nothing is predicted. */
  targets: Int32Array;
  /** Sequences in the batch (2P for preference batches: P chosen rows, then P rejected). */
  rows: number;
  /** Padded length. */
  T: number;
  /** Tokens with a target per sequence, (rows): the token count a length-normalised loss divides by. */
  tokenCounts: Int32Array;
}

/** A collated batch: a {@link TokenBatch} with its masks and lengths. */
export interface Batch extends TokenBatch {
  /** 1 where the token is a completion token, (rows, T). */
  completionMask: Uint8Array;
  /** 1 where the token is real (not padding), (rows, T). */
  attentionMask: Uint8Array;
  /** Real tokens per sequence (prompt + completion), (rows). */
  lengths: Int32Array;
}

/** A preference batch: rows 0..P-1 chosen, P..2P-1 rejected. */
export interface PreferenceBatch extends Batch {
  /** Pairs in the batch. */
  pairs: number;
}

/** A batch of unpaired (KTO) sequences with their labels. */
export interface UnpairedBatch extends Batch {
  /** 1 for a desirable completion, 0 for an undesirable one, (rows). */
  labels: Uint8Array;
}

/** Options of the collate functions. */
export interface CollateOptions {
  /** Id written into padding positions (masked, so any valid id works). */
  padTokenId: number;
  /** Pad T up to a multiple of this, so fewer distinct shapes reach the device. @default 1 */
  padToMultipleOf?: number;
}

/**
 * Pads sequences given as (prompt, completion) id pairs into one batch.
 */
export function collateSequences(
  sequences: ReadonlyArray<{ promptIds: readonly number[]; completionIds: readonly number[] }>,
  options: CollateOptions,
): Batch {
  const multiple = options.padToMultipleOf ?? 1;
  if (!Number.isInteger(multiple) || multiple < 1) {
    throw new RangeError(`padToMultipleOf must be a positive integer, got ${multiple}`);
  }
  const rows = sequences.length;
  let longest = 0;
  for (const s of sequences) {
    longest = Math.max(longest, s.promptIds.length + s.completionIds.length);
  }
  const T = Math.ceil(longest / multiple) * multiple;
  const inputIds = new Int32Array(rows * T).fill(options.padTokenId);
  const targets = new Int32Array(rows * T).fill(-1);
  const completionMask = new Uint8Array(rows * T);
  const attentionMask = new Uint8Array(rows * T);
  const tokenCounts = new Int32Array(rows);
  const lengths = new Int32Array(rows);
  sequences.forEach(({ promptIds, completionIds }, r) => {
    const base = r * T;
    const promptLength = promptIds.length;
    const length = promptLength + completionIds.length;
    inputIds.set(promptIds, base);
    inputIds.set(completionIds, base + promptLength);
    attentionMask.fill(1, base, base + length);
    completionMask.fill(1, base + promptLength, base + length);
    // Position t predicts token t+1: a target wherever t+1 is a completion token (t >= 0).
    for (let t = Math.max(promptLength - 1, 0); t + 1 < length; t++) {
      targets[base + t] = inputIds[base + t + 1];
    }
    tokenCounts[r] = Math.max(length - Math.max(promptLength, 1), 0);
    lengths[r] = length;
  });
  return { inputIds, targets, completionMask, attentionMask, rows, T, tokenCounts, lengths };
}

/**
 * Collates preference pairs: chosen sequences in rows 0..P-1, rejected in rows P..2P-1, right
 * padding.
 *
 * @example
 * ```ts
 * const batch = collatePreference(
 *   [{ promptIds: [1, 2, 3], chosenIds: [4, 5], rejectedIds: [6], file: "", line: 1 }],
 *   { padTokenId: 0 },
 * );
 * batch.inputIds; // Int32Array [1,2,3,4,5, 1,2,3,6,0], batch.T === 5
 * ```
 */
export function collatePreference(
  examples: ReadonlyArray<Pick<PreferenceExample, "promptIds" | "chosenIds" | "rejectedIds">>,
  options: CollateOptions,
): PreferenceBatch {
  const chosen = examples.map((e) => ({ promptIds: e.promptIds, completionIds: e.chosenIds }));
  const rejected = examples.map((e) => ({ promptIds: e.promptIds, completionIds: e.rejectedIds }));
  return { ...collateSequences([...chosen, ...rejected], options), pairs: examples.length };
}

/** Collates SFT sequences (one row each), with the same arrays as a preference batch. */
export function collateSft(
  examples: ReadonlyArray<Pick<SequenceExample, "promptIds" | "completionIds">>,
  options: CollateOptions,
): Batch {
  return collateSequences(examples, options);
}

/** Collates unpaired (KTO) sequences and their labels. */
export function collateUnpaired(
  examples: ReadonlyArray<Pick<SequenceExample, "promptIds" | "completionIds" | "label">>,
  options: CollateOptions,
): UnpairedBatch {
  const labels = Uint8Array.from(examples, (e) => (e.label ? 1 : 0));
  return { ...collateSequences(examples, options), labels };
}
