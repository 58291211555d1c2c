import assert from "node:assert/strict";
import { attentionBackward, attentionForward } from "../../src/cpu/attention.ts";
import { GpuBackend } from "../../src/gpu/backend.ts";
import * as kernels from "../../src/gpu/kernels/attention.ts";
import { FLASH_CANDIDATES, FLASH_TILING } from "../../src/gpu/kernels/attention_flash.ts";
import { assertClose, gpuTest, randomArray, upload } from "../helpers.ts";

interface Shape {
  B: number;
  T: number;
  H: number;
  Hkv: number;
  D: number;
}

const NAMES = ["out", "stats", "rowDot", "dq", "dk", "dv"] as const;

/** Runs forward and backward on the GPU, outputs prefilled with garbage so every slot must be written. */
async function runGpu(
  gpu: GpuBackend,
  s: Shape,
  inputs: Record<string, Float32Array>,
  tiling?: kernels.AttentionLayout,
) {
  const { B, T, H, Hkv, D } = s;
  const garbage = (n: number) => upload(gpu, new Float32Array(n).fill(7.5));
  const q = upload(gpu, inputs.q), k = upload(gpu, inputs.k), v = upload(gpu, inputs.v);
  const dOut = upload(gpu, inputs.dOut);
  const out = garbage(B * T * H * D), stats = garbage(B * H * T * 2);
  const dq = garbage(q.size), dk = garbage(k.size), dv = garbage(v.size);
  const rowDot = garbage(B * H * T);
  if (tiling) {
    kernels.attentionForward(gpu.ctx, out, stats, q, k, v, B, T, H, Hkv, D, tiling);
    kernels.attentionBackward(
      gpu.ctx,
      dq,
      dk,
      dv,
      rowDot,
      dOut,
      q,
      k,
      v,
      out,
      stats,
      B,
      T,
      H,
      Hkv,
      D,
      tiling,
    );
  } else {
    gpu.ops.attentionForward({ out, stats, q, k, v, B, T, H, Hkv, D });
    const saved = { dOut, q, k, v, out, stats };
    gpu.ops.attentionBackward({ dq, dk, dv, rowDot, ...saved, B, T, H, Hkv, D });
  }
  const read = async (t: typeof q) => (await gpu.read(t)) as Float32Array;
  return {
    out: await read(out),
    stats: await read(stats),
    rowDot: await read(rowDot),
    dq: await read(dq),
    dk: await read(dk),
    dv: await read(dv),
  };
}

function runCpu(s: Shape, inputs: Record<string, Float32Array>) {
  const { B, T, H, Hkv, D } = s;
  const out = new Float32Array(B * T * H * D), stats = new Float32Array(B * H * T * 2);
  const dq = new Float32Array(out.length), dk = new Float32Array(inputs.k.length);
  const dv = new Float32Array(dk.length), rowDot = new Float32Array(B * H * T);
  const { q, k, v, dOut } = inputs;
  attentionForward(out, stats, q, k, v, B, T, H, Hkv, D);
  attentionBackward(dq, dk, dv, rowDot, dOut, q, k, v, stats, B, T, H, Hkv, D);
  return { out, stats, rowDot, dq, dk, dv };
}

function makeInputs({ B, T, H, Hkv, D }: Shape, seed: number) {
  return {
    q: randomArray(B * T * H * D, seed, 2),
    k: randomArray(B * T * Hkv * D, seed + 1, 2),
    v: randomArray(B * T * Hkv * D, seed + 2),
    dOut: randomArray(B * T * H * D, seed + 3),
  };
}

/** Largest |a - b| over the arrays, for the reported error. */
const maxError = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Array.from(a).reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

// f32 on both sides; the CPU sums in float64. Scores reach |q.k|/sqrt(D) ~ 5, so exp and the
// D-term dots carry a few f32 ulps: 2e-6 absolute + 1e-4 relative covers them. The flash layout's
// online sum rescales as the max grows, and its rowDot is dOut . out (equal to probs . dProbs).
const TOL = { atol: 2e-6, rtol: 1e-4 };

// T = 70 exceeds the 64-invocation workgroup and D = 72 exceeds it too; no T here is a multiple of
// any tile (rows 1, 3, 4, 32, 64; staged keys 8, 16, 32), and H/Hkv = 3 makes blocks span heads.
const SHAPES: Shape[] = [
  { B: 2, T: 26, H: 6, Hkv: 2, D: 16 },
  { B: 2, T: 27, H: 4, Hkv: 4, D: 12 },
  { B: 1, T: 70, H: 2, Hkv: 1, D: 72 },
  // D <= 32 keeps 64 scores per row privately: keys 64..74 take the recompute path.
  { B: 1, T: 75, H: 2, Hkv: 1, D: 16 },
];

for (const shape of SHAPES) {
  const { B, T, H, Hkv, D } = shape;
  gpuTest(
    `WGSL attention forward and backward match the CPU (B=${B} T=${T} H=${H} Hkv=${Hkv} D=${D})`,
    async (gpu) => {
      const inputs = makeInputs(shape, 10 * T + H);
      const g = await runGpu(gpu, shape, inputs);
      const c = runCpu(shape, inputs);
      for (const name of NAMES) assertClose(g[name], c[name], { ...TOL, label: name });
      console.log(
        `  max |gpu - cpu|: out ${maxError(g.out, c.out).toExponential(1)}, ` +
          `dq ${maxError(g.dq, c.dq).toExponential(1)}, dk ${
            maxError(g.dk, c.dk).toExponential(1)
          }, ` +
          `dv ${maxError(g.dv, c.dv).toExponential(1)}`,
      );
    },
  );
}

gpuTest("WGSL attention is bit-identical from run to run", async (gpu) => {
  const shape = { B: 2, T: 26, H: 6, Hkv: 2, D: 16 };
  const inputs = makeInputs(shape, 99);
  for (const tiling of [kernels.ATTENTION_TILING_CPU, FLASH_TILING]) {
    const first = await runGpu(gpu, shape, inputs, tiling);
    const second = await runGpu(gpu, shape, inputs, tiling);
    for (const name of NAMES) {
      assert.deepEqual(
        new Uint32Array(first[name].buffer),
        new Uint32Array(second[name].buffer),
        `${name} differs between runs (${JSON.stringify(tiling)})`,
      );
    }
  }
});

gpuTest("WGSL attention outputs of real tokens ignore right padding", async (gpu) => {
  const shape = { B: 2, T: 26, H: 4, Hkv: 2, D: 16 };
  const { T, H, D } = shape;
  const inputs = makeInputs(shape, 7);
  // Batch 1 has 20 real tokens: change its pad positions' q, k, v.
  const real = 20;
  const noisy = { ...inputs, q: inputs.q.slice(), k: inputs.k.slice(), v: inputs.v.slice() };
  for (const [name, heads] of [["q", H], ["k", 2], ["v", 2]] as const) {
    const start = (T + real) * heads * D;
    noisy[name].set(randomArray(noisy[name].length - start, 3, 4), start);
  }
  const realEnd = (T + real) * H * D;
  for (const tiling of [kernels.ATTENTION_TILING_CPU, FLASH_TILING]) {
    const base = await runGpu(gpu, shape, inputs, tiling);
    const padded = await runGpu(gpu, shape, noisy, tiling);
    assert.deepEqual(padded.out.subarray(0, realEnd), base.out.subarray(0, realEnd));
  }
});

gpuTest("WGSL attention matches the CPU with 1 and with 3 rows per invocation", async (gpu) => {
  // 3 rows and 2 keys leave partial blocks (T * G = 78 query rows, T = 26 keys), and a block
  // spans two heads of a group.
  const shape = { B: 2, T: 26, H: 6, Hkv: 2, D: 16 };
  const inputs = makeInputs(shape, 5);
  const c = runCpu(shape, inputs);
  for (const tiling of [kernels.ATTENTION_TILING_GPU, { rows: 3, keys: 2 }]) {
    const g = await runGpu(gpu, shape, inputs, tiling);
    for (const name of NAMES) {
      assertClose(g[name], c[name], { ...TOL, label: `${name} rows ${tiling.rows}` });
    }
  }
});

gpuTest(
  "WGSL software attention gives the same bits for every unroll (keys or query rows per iteration)",
  async (gpu) => {
    // Unroll 3 leaves remainders of 1 and 2 (T = 26, 27, 70, 75); D = 72 rounds up to 128, where
    // the kernels take at most 2; SHAPES[3] sends keys 64..74 down the recompute path.
    for (const shape of SHAPES) {
      const inputs = makeInputs(shape, 4);
      const c = runCpu(shape, inputs);
      const base = await runGpu(gpu, shape, inputs, { rows: 4, keys: 4, unroll: 1 });
      for (const name of NAMES) assertClose(base[name], c[name], { ...TOL, label: name });
      for (const unroll of [3, 4]) {
        const g = await runGpu(gpu, shape, inputs, { rows: 4, keys: 4, unroll });
        for (const name of NAMES) {
          assert.deepEqual(
            new Uint32Array(g[name].buffer),
            new Uint32Array(base[name].buffer),
            `${name} with unroll ${unroll} differs from unroll 1 (${JSON.stringify(shape)})`,
          );
        }
      }
    }
  },
);

gpuTest(
  "WGSL flash attention (the hardware layout) matches the CPU, every tile candidate the same bits",
  async (gpu) => {
    for (const shape of SHAPES) {
      const inputs = makeInputs(shape, 3);
      const c = runCpu(shape, inputs);
      const runs = [];
      for (const tiling of FLASH_CANDIDATES) runs.push(await runGpu(gpu, shape, inputs, tiling));
      for (const name of NAMES) {
        assertClose(runs[0][name], c[name], { ...TOL, label: `${name} ${JSON.stringify(shape)}` });
        for (let i = 1; i < runs.length; i++) {
          assert.deepEqual(
            new Uint32Array(runs[i][name].buffer),
            new Uint32Array(runs[0][name].buffer),
            `${name} of ${JSON.stringify(FLASH_CANDIDATES[i])} differs from the default tiles`,
          );
        }
      }
    }
  },
);

gpuTest(
  "the hardware layouts select the flash tiles on any adapter, the software ones the rows",
  async () => {
    const hardware = await GpuBackend.create({ layouts: "hardware" });
    const software = await GpuBackend.create({ layouts: "software" });
    try {
      assert.deepEqual(kernels.attentionTiling(hardware.ctx), FLASH_TILING);
      assert.deepEqual(kernels.attentionTiling(software.ctx), kernels.ATTENTION_TILING_CPU);
    } finally {
      hardware.destroy();
      software.destroy();
    }
  },
);
