/**
 * The host-side token index of a batch (a CSR of positions grouped by token id), uploaded with
 * the batch by the model; both backends' embedding backward read it, which makes that backward a
 * gather with a fixed summation order instead of a scatter with atomics.
 *
 * @module
 */

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
