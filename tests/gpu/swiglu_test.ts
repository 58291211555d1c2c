// WGSL SwiGLU against the CPU f32 reference: exp and a few products per element, so atol 1e-6,
// rtol 1e-5. Gates span [-40, 40) to reach the saturated ends of the sigmoid.
import * as ref from "../../src/cpu/swiglu.ts";
import { assertClose, gpuTest, randomArray, upload } from "../helpers.ts";

const n = 26 * 160 + 3;
const tol = { atol: 1e-6, rtol: 1e-5 };

gpuTest("swiglu forward and backward match the CPU reference", async (gpu) => {
  const gate = randomArray(n, 1, 8);
  for (let i = 0; i < 40; i++) gate[i] = (i - 20) * 2; // -40 .. 38
  const up = randomArray(n, 2, 2), dOut = randomArray(n, 3);
  const out = new Float32Array(n), dGate = new Float32Array(n), dUp = new Float32Array(n);
  ref.swigluForward(out, gate, up, n);
  ref.swigluBackward(dGate, dUp, dOut, gate, up, n);

  const tGate = upload(gpu, gate), tUp = upload(gpu, up), tdOut = upload(gpu, dOut);
  const tOut = gpu.alloc("activations", n);
  const tdGate = gpu.alloc("activations", n), tdUp = gpu.alloc("activations", n);
  gpu.ops.swigluForward(tOut, tGate, tUp, n);
  gpu.ops.swigluBackward(tdGate, tdUp, tdOut, tGate, tUp, n);
  assertClose(await gpu.read(tOut), out, { ...tol, label: "out" });
  assertClose(await gpu.read(tdGate), dGate, { ...tol, label: "dGate" });
  assertClose(await gpu.read(tdUp), dUp, { ...tol, label: "dUp" });
});
