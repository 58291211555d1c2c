// WGSL matmul and colSum against the CPU f32 reference. The GPU sums k products in f32 in
// ascending order, the CPU in float64, so they agree to atol 1e-4 * max(1, k/64), rtol 1e-4
// (operands uniform in [-1, 1]). Shapes cover the vec4 path (every contiguous axis a multiple
// of 4), the scalar path (odd sizes), partial 64 x 64 tiles, k % 4 tails and 1 x 1 x 1.
import * as ref from "../../src/cpu/matmul.ts";
import { assertClose, gpuTest, randomArray, upload } from "../helpers.ts";
import type { GpuBackend } from "../../src/gpu/backend.ts";
import { matmul, type MatmulTiling } from "../../src/gpu/kernels/matmul.ts";

const COMBOS = [[false, true], [false, false], [true, false], [true, true]] as const;
/**
 * m, n, k: all multiples of 4 with partial tiles; odd everywhere; odd with a k tail of 1;
 * mixed, as in a test model (26 tokens, vocab 97, width 64: the LM head and its gradients);
 * vec4 operands with a k tail (dW = dY^T @ X sums over 97 tokens).
 */
const SHAPES = [
  [68, 132, 36],
  [26, 97, 163],
  [33, 65, 17],
  [1, 1, 1],
  [26, 97, 64],
  [28, 64, 97],
] as const;

const tolerance = (k: number) => ({ atol: 1e-4 * Math.max(1, k / 64), rtol: 1e-4 });
const name = (transA: boolean, transB: boolean) => (transA ? "T" : "N") + (transB ? "T" : "N");

interface Case {
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  accumulate?: boolean;
  withBias?: boolean;
  /** Calls the kernel with this tiling instead of the backend's default. */
  tiling?: MatmulTiling;
}

/** Runs one case on both backends and compares; returns the GPU result. */
async function check(gpu: GpuBackend, c: Case, seed: number): Promise<Float32Array> {
  const { m, n, k, transA, transB, accumulate = false, withBias = false, tiling } = c;
  const a = randomArray(m * k, seed), b = randomArray(k * n, seed + 1);
  const prior = randomArray(m * n, seed + 2), bias = randomArray(n, seed + 3);
  const expected = Float32Array.from(prior);
  ref.matmul(expected, a, b, m, n, k, {
    transA,
    transB,
    accumulate,
    bias: withBias ? bias : undefined,
  });

  const out = upload(gpu, prior);
  const options = { transA, transB, accumulate, bias: withBias ? upload(gpu, bias) : undefined };
  if (tiling) matmul(gpu.ctx, out, upload(gpu, a), upload(gpu, b), m, n, k, options, tiling);
  else gpu.ops.matmul(out, upload(gpu, a), upload(gpu, b), m, n, k, options);
  const actual = await gpu.read(out) as Float32Array;
  const label = `${name(transA, transB)} ${m}x${n}x${k}` + (accumulate ? " accumulate" : "") +
    (withBias ? " bias" : "");
  assertClose(actual, expected, { ...tolerance(k), label });
  return actual;
}

gpuTest("matmul matches the CPU for NT, NN, TN and TT on vec4 and odd shapes", async (gpu) => {
  let seed = 1;
  for (const [m, n, k] of SHAPES) {
    for (const [transA, transB] of COMBOS) await check(gpu, { m, n, k, transA, transB }, seed++);
  }
});

gpuTest(
  "matmul accumulates into out and adds the bias for every transpose combination",
  async (gpu) => {
    let seed = 100;
    for (const [transA, transB] of COMBOS) {
      const [m, n, k] = SHAPES[1];
      await check(gpu, { m, n, k, transA, transB, withBias: true, accumulate: true }, seed++);
    }
    // The fused forward y = x @ W^T + b on the vec4 path, set and accumulated.
    const [m, n, k] = SHAPES[0];
    await check(gpu, { m, n, k, transA: false, transB: true, withBias: true }, seed++);
    await check(
      gpu,
      { m, n, k, transA: false, transB: true, withBias: true, accumulate: true },
      seed++,
    );
    // dW += dY^T @ X, the accumulate of the backward, on the vec4 path.
    await check(gpu, { m, n, k, transA: true, transB: false, accumulate: true }, seed++);
  },
);

gpuTest("matmul with one k step per loop iteration (kSteps 1) matches the CPU", async (gpu) => {
  // A small block keeps the compile short; the k1 loop is the same for every block size.
  const tiling: MatmulTiling = { rows: 8, cols: 4, groupX: 4, groupY: 4, kSteps: 1 };
  let seed = 300;
  for (const [m, n, k] of [SHAPES[0], SHAPES[2]]) {
    for (const [transA, transB] of COMBOS) {
      await check(gpu, { m, n, k, transA, transB, tiling }, seed++);
    }
  }
  await check(gpu, { ...shape(SHAPES[1]), transA: false, transB: true, withBias: true, tiling }, 9);
});

const shape = ([m, n, k]: readonly [number, number, number]) => ({ m, n, k });

gpuTest("matmul spans several 64 x 64 tiles and a long k", async (gpu) => {
  await check(gpu, { m: 130, n: 200, k: 260, transA: false, transB: true }, 200);
  await check(gpu, { m: 129, n: 201, k: 259, transA: true, transB: false }, 201);
});

gpuTest("matmul with k = 0 stores the bias (an empty sum)", async (gpu) => {
  const out = upload(gpu, [9, 9, 9, 9]);
  const empty = gpu.alloc("activations", 1);
  gpu.ops.matmul(out, empty, empty, 2, 2, 0, { bias: upload(gpu, [1, 2]) });
  assertClose(await gpu.read(out), [1, 2, 1, 2], { atol: 0, rtol: 0 });
});

gpuTest("matmul rejects an output that overlaps an input", (gpu) => {
  const a = gpu.alloc("activations", 256), b = gpu.alloc("activations", 16);
  try {
    gpu.ops.matmul(gpu.view(a, 64, 16), a, b, 4, 4, 4);
  } catch (e) {
    if ((e as Error).message.includes("overlaps")) return;
    throw e;
  }
  throw new Error("an overlapping output was accepted");
});

gpuTest("matmul is bit-identical run to run", async (gpu) => {
  for (const [m, n, k] of [SHAPES[0], SHAPES[1]]) {
    const a = upload(gpu, randomArray(m * k, 300)), b = upload(gpu, randomArray(k * n, 301));
    const bias = upload(gpu, randomArray(n, 302));
    const first = gpu.alloc("activations", m * n), second = gpu.alloc("activations", m * n);
    gpu.ops.matmul(first, a, b, m, n, k, { transB: true, bias });
    gpu.ops.matmul(second, a, b, m, n, k, { transB: true, bias });
    const [x, y] = [await gpu.read(first), await gpu.read(second)];
    const [xBits, yBits] = [new Uint32Array(x.buffer), new Uint32Array(y.buffer)];
    const differing = xBits.findIndex((bits, i) => bits !== yBits[i]);
    if (differing >= 0) throw new Error(`${m}x${n}x${k}: runs differ at ${differing}`);
  }
});

gpuTest("colSum matches the CPU, set and accumulated", async (gpu) => {
  for (const [rows, cols] of [[26, 97], [1, 5], [70, 300]]) {
    const x = randomArray(rows * cols, rows), prior = randomArray(cols, cols);
    for (const accumulate of [false, true]) {
      const expected = Float32Array.from(prior);
      ref.colSum(expected, x, rows, cols, accumulate);
      const out = upload(gpu, prior);
      gpu.ops.colSum(out, upload(gpu, x), rows, cols, accumulate);
      assertClose(await gpu.read(out), expected, {
        atol: 1e-6 * rows,
        rtol: 1e-5,
        label: `colSum ${rows}x${cols} accumulate=${accumulate}`,
      });
    }
  }
});
