import assert from "node:assert/strict";
import { add, copy, fill } from "../../src/cpu/elementwise.ts";

Deno.test("add sums elementwise and works in place", () => {
  const a = Float32Array.of(1, 2, 3, 4), b = Float32Array.of(10, 20, 30, 40);
  const out = new Float32Array(4);
  add(out, a, b, 3);
  assert.deepEqual([...out], [11, 22, 33, 0]);
  add(a, a, b, 4);
  assert.deepEqual([...a], [11, 22, 33, 44]);
  add(b, a, b, 4);
  assert.deepEqual([...b], [21, 42, 63, 84]);
});

Deno.test("copy overwrites, or accumulates, the first n elements", () => {
  const a = Float64Array.of(1, 2, 3);
  const out = Float64Array.of(5, 5, 5);
  copy(out, a, 2);
  assert.deepEqual([...out], [1, 2, 5]);
  copy(out, a, 3, true);
  assert.deepEqual([...out], [2, 4, 8]);
  copy(out, out, 3, true);
  assert.deepEqual([...out], [4, 8, 16]);
});

Deno.test("fill sets the first n elements", () => {
  const out = new Float32Array(5);
  fill(out, 0.5, 4);
  assert.deepEqual([...out], [0.5, 0.5, 0.5, 0.5, 0]);
});
