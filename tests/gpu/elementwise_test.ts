// WGSL elementwise ops against the CPU f32 reference. A single f32 add or copy is exact in
// both, so the tolerance is zero.
import * as ref from "../../src/cpu/elementwise.ts";
import { assertClose, gpuTest, randomArray, upload } from "../helpers.ts";

const n = 1001;
const exact = { atol: 0, rtol: 0 };

gpuTest("add matches the CPU reference out of place and in place", async (gpu) => {
  const a = randomArray(n, 1), b = randomArray(n, 2);
  const expected = new Float32Array(n);
  ref.add(expected, a, b, n);
  const ta = upload(gpu, a), tb = upload(gpu, b), out = gpu.alloc("activations", n);
  gpu.ops.add(out, ta, tb, n);
  assertClose(await gpu.read(out), expected, { ...exact, label: "out of place" });
  gpu.ops.add(ta, ta, tb, n);
  assertClose(await gpu.read(ta), expected, { ...exact, label: "out === a" });
  const tb2 = upload(gpu, b), ta2 = upload(gpu, a);
  gpu.ops.add(tb2, ta2, tb2, n);
  assertClose(await gpu.read(tb2), expected, { ...exact, label: "out === b" });
});

gpuTest("add handles a === b, also in place", async (gpu) => {
  const a = randomArray(n, 3);
  const twice = a.map((v) => v + v);
  const ta = upload(gpu, a), out = gpu.alloc("activations", n);
  gpu.ops.add(out, ta, ta, n);
  assertClose(await gpu.read(out), twice, { ...exact, label: "a === b" });
  gpu.ops.add(ta, ta, ta, n);
  assertClose(await gpu.read(ta), twice, { ...exact, label: "out === a === b" });
});

gpuTest("copy overwrites or accumulates only the first n elements of views", async (gpu) => {
  const a = randomArray(n, 4), prior = randomArray(n + 64, 5);
  const parent = upload(gpu, prior);
  const view = gpu.view(parent, 64, n); // 64 elements = the 256-byte binding alignment
  const ta = upload(gpu, a);
  const expected = Float32Array.from(prior);
  ref.copy(expected.subarray(64), a, n - 3, true);
  gpu.ops.copy(view, ta, n - 3, true);
  assertClose(await gpu.read(parent), expected, { ...exact, label: "accumulate" });
  ref.copy(expected.subarray(64), a, n - 3);
  gpu.ops.copy(view, ta, n - 3);
  assertClose(await gpu.read(parent), expected, { ...exact, label: "overwrite" });
});

gpuTest("fill sets the first n elements to the value", async (gpu) => {
  const out = upload(gpu, randomArray(n, 6));
  const expected = await gpu.read(out) as Float32Array;
  ref.fill(expected, 0.1, n - 1);
  gpu.ops.fill(out, 0.1, n - 1);
  assertClose(await gpu.read(out), expected, { ...exact, label: "fill" });
});
