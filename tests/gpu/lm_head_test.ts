// The fused LM head (src/gpu/lm_head.ts, kernels/lm_head.ts) against the CPU reference
// (src/cpu/logits.ts with the products in float64) at sizes that are multiples of no tile: rows
// not a multiple of the 16-row tile, V not a multiple of the 64-column tile nor of the 256-column
// group, C odd (scalar loads) and a multiple of 4 (vec4 loads); masked targets; a bf16 or f16 head
// bit-identical to the f32 head holding the same values; bit-identical across chunk sizes.
import assert from "node:assert/strict";
import * as ref from "../../src/cpu/logits.ts";
import type { GpuBackend } from "../../src/gpu/backend.ts";
import type { Tensor } from "../../src/backend/mod.ts";
import {
  LM_HEAD_CHUNKS,
  lmHeadBackward,
  lmHeadForward,
  lmHeadPlan,
  lmHeadScratch,
} from "../../src/gpu/lm_head.ts";
import { decode16, encode16 } from "../../src/io/half.ts";
import { assertClose, gpuTest, randomArray, upload } from "../helpers.ts";

interface Case {
  N: number;
  V: number;
  C: number;
  hidden: Float32Array;
  weight: Float32Array;
  targets: Int32Array;
  rowGrad: Float32Array;
  prior: Float32Array;
}

function makeCase(N: number, V: number, C: number, seed: number): Case {
  const u = randomArray(N, seed + 3);
  return {
    N,
    V,
    C,
    hidden: randomArray(N * C, seed, 2),
    weight: randomArray(V * C, seed + 1, 2),
    // Every third row masked; the others hit the first, the last and interior columns.
    targets: Int32Array.from(
      u,
      (x, r) =>
        r % 3 === 1 ? -1 : r % 7 === 0 ? V - 1 : r % 5 === 0 ? 0 : Math.floor((x + 1) / 2 * V),
    ),
    rowGrad: randomArray(N, seed + 4),
    prior: randomArray(V * C, seed + 5),
  };
}

function cpuReference(c: Case) {
  const { N, V, C } = c;
  const logits = new Float64Array(N * V);
  for (let r = 0; r < N; r++) {
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let k = 0; k < C; k++) s += c.hidden[r * C + k] * c.weight[v * C + k];
      logits[r * V + v] = s;
    }
  }
  const lse = new Float64Array(N), tokenLogp = new Float64Array(N);
  ref.logitsForward(lse, tokenLogp, logits, c.targets, N, V);
  ref.logitsBackward(logits, lse, c.targets, Float64Array.from(c.rowGrad), N, V);
  const dHidden = new Float64Array(N * C), dWeight = Float64Array.from(c.prior);
  for (let r = 0; r < N; r++) {
    for (let v = 0; v < V; v++) {
      const d = logits[r * V + v];
      if (d === 0) continue;
      for (let k = 0; k < C; k++) {
        dHidden[r * C + k] += d * c.weight[v * C + k];
        dWeight[v * C + k] += d * c.hidden[r * C + k];
      }
    }
  }
  return { lse, tokenLogp, dHidden, dWeight };
}

async function runFused(gpu: GpuBackend, c: Case, vocabChunk: number, weight: Tensor) {
  const { N, V, C } = c;
  const f32 = (n: number) => gpu.alloc("activations", n);
  const lse = f32(N), tokenLogp = f32(N), stats = f32(N * 3);
  const scratch = f32(lmHeadScratch(N, vocabChunk).trainable);
  const hidden = upload(gpu, c.hidden), targets = upload(gpu, c.targets, "i32");
  const rowGrad = upload(gpu, c.rowGrad), dHidden = upload(gpu, randomArray(N * C, 99));
  const dWeight = upload(gpu, c.prior);
  const common = { scratch, hidden, weight, targets, lse, N, V, C, vocabChunk };
  lmHeadForward(gpu.ctx, { ...common, tokenLogp, stats });
  lmHeadBackward(gpu.ctx, { ...common, dHidden, dWeight, rowGrad });
  const read = async (t: Tensor) => (await gpu.read(t)) as Float32Array;
  return {
    lse: await read(lse),
    tokenLogp: await read(tokenLogp),
    dHidden: await read(dHidden),
    dWeight: await read(dWeight),
  };
}

const SHAPES = [
  { N: 37, V: 1000, C: 13 }, // scalar loads, four groups, the last one partial
  { N: 21, V: 300, C: 36 }, // vec4 loads, a partial tile and group
];

for (const [i, { N, V, C }] of SHAPES.entries()) {
  gpuTest(
    `fused LM head matches the CPU and is bit-identical across chunks (N=${N} V=${V} C=${C})`,
    async (gpu) => {
      const c = makeCase(N, V, C, 10 + i);
      const want = cpuReference(c);
      const weight = upload(gpu, c.weight);
      const chunks = [256, 512, Math.ceil(V / 256) * 256];
      const runs = [];
      for (const chunk of chunks) runs.push(await runFused(gpu, c, chunk, weight));
      const got = runs[0];
      // lse ~ log(V) + |logit| (logits up to ~4C): an f32 ulp of the sums is ~1e-5 at C = 36.
      const tol = { atol: 2e-5 * C, rtol: 1e-5 };
      assertClose(got.lse, want.lse, { ...tol, label: "lse" });
      assertClose(got.tokenLogp, want.tokenLogp, { ...tol, label: "tokenLogp" });
      assertClose(got.dHidden, want.dHidden, { ...tol, label: "dHidden" });
      assertClose(got.dWeight, want.dWeight, { ...tol, label: "dWeight" });
      for (let r = 0; r < N; r++) {
        if (c.targets[r] < 0) assert.ok(Object.is(got.tokenLogp[r], 0), `masked tokenLogp[${r}]`);
      }
      for (const [j, run] of runs.entries()) {
        for (const key of ["lse", "tokenLogp", "dHidden", "dWeight"] as const) {
          assert.deepEqual(run[key], got[key], `${key}: chunk ${chunks[j]} differs from 256`);
        }
      }
    },
  );
}

// A half head (frozen bf16/f16 weight, widened in the kernel) through the vec4 and scalar loads.
for (const [dtype, C] of [["bf16", 36], ["bf16", 13], ["f16", 36], ["f16", 13]] as const) {
  gpuTest(
    `fused LM head reads a ${dtype} head bit for bit as the f32 head of the same values (C=${C})`,
    async (gpu) => {
      const c = makeCase(19, 700, C, 30);
      const format = dtype === "bf16" ? "BF16" : "F16";
      const bytes = new Uint8Array(c.weight.length * 2);
      encode16(c.weight, format, bytes, 0);
      c.weight = decode16(bytes, 0, c.weight.length, format);
      const half = gpu.alloc("parameters", c.weight.length, dtype);
      gpu.write(half, c.weight);
      const fromHalf = await runFused(gpu, c, 256, half);
      const fromF32 = await runFused(gpu, c, 256, upload(gpu, c.weight));
      for (const key of ["lse", "tokenLogp", "dHidden", "dWeight"] as const) {
        assert.deepEqual(fromHalf[key], fromF32[key], key);
      }
      const want = cpuReference(c);
      const tol = { atol: 2e-5 * C, rtol: 1e-5 };
      assertClose(fromHalf.lse, want.lse, { ...tol, label: "lse" });
      assertClose(fromHalf.tokenLogp, want.tokenLogp, { ...tol, label: "tokenLogp" });
      assertClose(fromHalf.dHidden, want.dHidden, { ...tol, label: "dHidden" });
      assertClose(fromHalf.dWeight, want.dWeight, { ...tol, label: "dWeight" });
    },
  );
}

gpuTest("the LM head plan takes the widest chunk whose scratch fits the budget", (gpu) => {
  // Qwen2.5-0.5B at 2 pairs x 1024: 4096 rows, a 16 MiB budget gives 1024 columns per chunk.
  const qwen = lmHeadPlan(gpu.ctx, 4096, 151936, 896, 4 * 1024 * 1024)!;
  assert.equal(qwen.vocabChunk, 1024);
  assert.equal(qwen.scratch.trainable, 4096 * 1024);
  assert.equal(qwen.scratch.frozen, 4096 * 3 * 4);
  // A small vocabulary is one chunk (rounded up to a group); a tiny budget still gets one group.
  assert.equal(lmHeadPlan(gpu.ctx, 64, 300, 36, 1 << 22)!.vocabChunk, 512);
  assert.equal(lmHeadPlan(gpu.ctx, 64, 5000, 36, 1)!.vocabChunk, LM_HEAD_CHUNKS[0]);
  // Hidden states larger than one binding: the fused head does not apply.
  assert.equal(lmHeadPlan(gpu.ctx, gpu.ctx.maxBindingElements, 300, 2, 1 << 22), undefined);
});
