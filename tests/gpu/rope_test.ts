// WGSL RoPE against the CPU f32 reference: two products and a sum per element, so atol 1e-6,
// rtol 1e-5 (the GPU may fuse them into an fma).
import * as ref from "../../src/cpu/rope.ts";
import { ropeTables } from "../../src/model/rope_tables.ts";
import { assertClose, gpuTest, randomArray, upload } from "../helpers.ts";

const B = 2, T = 13, H = 3, D = 16, BT = B * T, n = BT * H * D;
const tol = { atol: 1e-6, rtol: 1e-5 };

gpuTest("rope forward and inverse match the CPU reference (T=13, H=3, D=16)", async (gpu) => {
  const { cos, sin } = ropeTables(T, D, 10000);
  const x = randomArray(n, 1, 3);
  const expected = Float32Array.from(x);
  ref.rope(expected, cos, sin, BT, T, H, D, false);
  const tx = upload(gpu, x), tCos = upload(gpu, cos), tSin = upload(gpu, sin);
  gpu.ops.rope({ x: tx, cos: tCos, sin: tSin, rows: BT, T, H, D, inverse: false });
  const rotated = await gpu.read(tx);
  assertClose(rotated, expected, { ...tol, label: "forward" });

  const back = Float32Array.from(rotated);
  ref.rope(back, cos, sin, BT, T, H, D, true);
  gpu.ops.rope({ x: tx, cos: tCos, sin: tSin, rows: BT, T, H, D, inverse: true });
  const restored = await gpu.read(tx);
  assertClose(restored, back, { ...tol, label: "inverse" });
  // f32 tables: cos^2 + sin^2 = 1 to about 1e-7, so the round trip restores x to ~1e-6.
  assertClose(restored, x, { atol: 3e-6, rtol: 0, label: "inverse undoes forward" });
});
