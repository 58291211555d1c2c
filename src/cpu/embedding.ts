/**
 * CPU reference of the token embedding (`model.embed_tokens`), forward and backward, and the
 * host-side token index (a CSR of positions grouped by token id) that makes the backward a
 * gather with a fixed summation order instead of a scatter with atomics.
 *
 * Shapes:
 *   ids: (N) i32, token ids in [0, V)
 *   table, dTable: (V, C)
 *   out, dOut: (N, C)
 *   order: (N) i32, positions grouped by id; offsets: (V+1) i32
 *
 * @module
 */

import type { FloatArray } from "./types.ts";

/** The positions of each token id: `order[offsets[v] .. offsets[v+1])` are id v's positions. */
export interface TokenIndex {
  /** (N) positions sorted by (token id, position). */
  order: Int32Array;
  /** (V+1) start of each id's group in `order`; `offsets[V] = N`. */
  offsets: Int32Array;
}

/**
 * Builds the token index of a batch for {@link embeddingBackward} (a counting sort, stable, so
 * positions ascend within an id and every gradient row sums in position order).
 *
 * @example
 * ```ts
 * const { order, offsets } = tokenIndex(Int32Array.of(2, 0, 2), 3);
 * // order = [1, 0, 2], offsets = [0, 1, 1, 3]
 * ```
 * @throws {RangeError} when an id is outside [0, V).
 */
export function tokenIndex(ids: Int32Array, V: number): TokenIndex {
  const offsets = new Int32Array(V + 1);
  for (let p = 0; p < ids.length; p++) {
    const id = ids[p];
    if (!(id >= 0 && id < V)) {
      throw new RangeError(
        `token id ${id} at position ${p} is outside the vocabulary [0, ${V}): ` +
          `check that the tokenizer matches the model's vocab_size`,
      );
    }
    offsets[id + 1]++;
  }
  for (let v = 0; v < V; v++) offsets[v + 1] += offsets[v];
  const next = offsets.slice(0, V);
  const order = new Int32Array(ids.length);
  for (let p = 0; p < ids.length; p++) order[next[ids[p]]++] = p;
  return { order, offsets };
}

/** out (N,C) = table (V,C)[ids (N)]. */
export function embeddingForward(
  out: FloatArray,
  ids: Int32Array,
  table: FloatArray,
  N: number,
  C: number,
): void {
  const V = table.length / C;
  for (let n = 0; n < N; n++) {
    const id = ids[n];
    if (!(id >= 0 && id < V)) {
      throw new RangeError(
        `embeddingForward: token id ${id} at position ${n} is outside [0, ${V})`,
      );
    }
    for (let c = 0; c < C; c++) out[n * C + c] = table[id * C + c];
  }
}

/**
 * dTable (V,C) += sum over the positions p of each id v (in `order`, ascending p) of dOut[p].
 * Each (v, c) starts from its current value and adds its positions in that fixed order, the same
 * order as the WGSL kernel, so only the rounding of each addition differs between them.
 */
export function embeddingBackward(
  dTable: FloatArray,
  dOut: FloatArray,
  order: Int32Array,
  offsets: Int32Array,
  V: number,
  C: number,
): void {
  for (let v = 0; v < V; v++) {
    const start = offsets[v], end = offsets[v + 1];
    if (start === end) continue;
    for (let c = 0; c < C; c++) {
      let sum = dTable[v * C + c];
      for (let j = start; j < end; j++) sum += dOut[order[j] * C + c];
      dTable[v * C + c] = sum;
    }
  }
}
