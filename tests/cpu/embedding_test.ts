import assert from "node:assert/strict";
import { tokenIndex } from "../../src/backend/mod.ts";
import { embeddingBackward, embeddingForward } from "../../src/cpu/embedding.ts";
import { assertClose, randomArray } from "../helpers.ts";

Deno.test("tokenIndex groups positions by id in ascending order", () => {
  const { order, offsets } = tokenIndex(Int32Array.of(2, 0, 2, 4, 0, 2), 5);
  assert.deepEqual([...order], [1, 4, 0, 2, 5, 3]);
  assert.deepEqual([...offsets], [0, 2, 2, 5, 5, 6]);
});

Deno.test("tokenIndex rejects an id outside the vocabulary, naming it and V", () => {
  assert.throws(() => tokenIndex(Int32Array.of(1, 7), 5), {
    name: "RangeError",
    message: /token\ id\ 7/,
  });
  assert.throws(() => tokenIndex(Int32Array.of(-1), 5), {
    name: "RangeError",
    message: /\[0,\ 5\)/,
  });
});

Deno.test("embeddingForward gathers table rows", () => {
  const table = Float32Array.of(0, 1, 10, 11, 20, 21); // (V=3, C=2)
  const out = new Float32Array(6);
  embeddingForward(out, Int32Array.of(2, 0, 2), table, 3, 2);
  assert.deepEqual([...out], [20, 21, 0, 1, 20, 21]);
});

Deno.test("embeddingBackward matches finite differences with repeated ids", () => {
  // loss = sum(out * probe): d loss / d table[v] = sum of probe rows at v's positions.
  const N = 7, C = 5, V = 6;
  const ids = Int32Array.of(3, 1, 3, 0, 3, 5, 1); // id 2 and 4 unused, 3 three times
  const table = Float64Array.from(randomArray(V * C, 1));
  const probe = Float64Array.from(randomArray(N * C, 2));
  const loss = () => {
    const out = new Float64Array(N * C);
    embeddingForward(out, ids, table, N, C);
    return out.reduce((s, o, i) => s + o * probe[i], 0);
  };
  const prior = Float64Array.from(randomArray(V * C, 3));
  const dTable = prior.slice();
  const { order, offsets } = tokenIndex(ids, V);
  embeddingBackward(dTable, probe, order, offsets, V, C);
  const h = 1e-6;
  const numeric = new Float64Array(V * C);
  for (let i = 0; i < V * C; i++) {
    const saved = table[i];
    table[i] = saved + h;
    const plus = loss();
    table[i] = saved - h;
    const minus = loss();
    table[i] = saved;
    numeric[i] = prior[i] + (plus - minus) / (2 * h);
  }
  assertClose(dTable, numeric, { atol: 1e-8, rtol: 1e-7, label: "dTable" });
});
