/**
 * CPU reference of the token embedding (`model.embed_tokens`), forward and backward; the backward
 * reads the token index of src/backend/tokens.ts.
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
