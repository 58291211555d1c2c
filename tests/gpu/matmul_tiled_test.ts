// The workgroup-tiled (hardware) matmul layouts, forced on whatever adapter runs the tests: every
// candidate tiling x transpose combination x bias/accumulate, on sizes that are multiples of no
// tile (and on a vec4 shape whose k is a multiple of no K-tile), against the CPU reference and
// bit for bit against each other and against the software layout of the same adapter.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import * as ref from "../../src/cpu/matmul.ts";
import { assertClose, gpuTest, randomArray, upload } from "../helpers.ts";
import type { GpuBackend } from "../../src/gpu/backend.ts";
import {
  matmul,
  MATMUL_TILING,
  MATMUL_TILING_SCALAR,
  MATMUL_TILING_SOFTWARE,
  type MatmulTiling,
} from "../../src/gpu/kernels/matmul.ts";
import {
  TILED_CANDIDATES,
  tiledFits,
  tiledName,
  type TiledTiling,
} from "../../src/gpu/kernels/matmul_tiled.ts";

/**
 * On a software adapter a large tiling takes a minute or more to compile (llvmpipe unrolls it), so
 * there the default run (CI) covers the smallest register block with the short K-tile (64x64x8
 * 4x4) for every transpose and the largest (128x128x8 8x8) for NT, the layout of the model's
 * projections; DPO_TEST_ALL_TILINGS=1, or any hardware adapter, runs every candidate everywhere.
 */
function candidatesFor(gpu: GpuBackend, transA: boolean, transB: boolean): TiledTiling[] {
  const fits = TILED_CANDIDATES.filter((t) => tiledFits(t, gpu.ctx.limits));
  if (!gpu.ctx.isSoftware || Deno.env.get("DPO_TEST_ALL_TILINGS") === "1") return fits;
  const short = fits.filter((t) => t.bk === 8);
  return !transA && transB ? short : short.slice(0, 1);
}

const COMBOS = [[false, true], [false, false], [true, false], [true, true]] as const;

/**
 * m, n, k: odd everywhere (scalar loads) with bias and accumulate; all multiples of 4 (vec4
 * loads) with k % 8 = 4.
 */
const CASES = [
  { m: 67, n: 131, k: 37, accumulate: true, withBias: true },
  { m: 68, n: 132, k: 36, accumulate: false, withBias: false },
] as const;

const tolerance = (k: number) => ({ atol: 1e-4 * Math.max(1, k / 64), rtol: 1e-4 });

async function run(
  gpu: GpuBackend,
  c: (typeof CASES)[number],
  transA: boolean,
  transB: boolean,
  tiling: MatmulTiling | TiledTiling,
  seed: number,
): Promise<Float32Array> {
  const { m, n, k, accumulate, withBias } = c;
  const a = randomArray(m * k, seed), b = randomArray(k * n, seed + 1);
  const prior = randomArray(m * n, seed + 2), bias = randomArray(n, seed + 3);
  const out = upload(gpu, prior);
  const options = { transA, transB, accumulate, bias: withBias ? upload(gpu, bias) : undefined };
  matmul(gpu.ctx, out, upload(gpu, a), upload(gpu, b), m, n, k, options, tiling);
  return await gpu.read(out) as Float32Array;
}

function expected(
  c: (typeof CASES)[number],
  transA: boolean,
  transB: boolean,
  seed: number,
): Float32Array {
  const { m, n, k, accumulate, withBias } = c;
  const a = randomArray(m * k, seed), b = randomArray(k * n, seed + 1);
  const out = randomArray(m * n, seed + 2), bias = randomArray(n, seed + 3);
  ref.matmul(out, a, b, m, n, k, { transA, transB, accumulate, bias: withBias ? bias : undefined });
  return out;
}

const label = (c: (typeof CASES)[number], transA: boolean, transB: boolean, t: string) =>
  `${transA ? "T" : "N"}${transB ? "T" : "N"} ${c.m}x${c.n}x${c.k}` +
  (c.accumulate ? " accumulate" : "") + (c.withBias ? " bias" : "") + ` ${t}`;

for (const [transA, transB] of COMBOS) {
  gpuTest(
    `tiled matmul ${transA ? "T" : "N"}${transB ? "T" : "N"}: every candidate matches the CPU ` +
      `and gives the software layout's bits`,
    async (gpu) => {
      const candidates = candidatesFor(gpu, transA, transB);
      if (candidates.length === 0) throw new Error("no tiled candidate fits this adapter");
      let seed = 10 * (Number(transA) * 2 + Number(transB)) + 1;
      for (const c of CASES) {
        const vec4 = c.k % 4 === 0 && c.m % 4 === 0 && c.n % 4 === 0 && c.k > 0;
        const simple = vec4 ? [MATMUL_TILING, MATMUL_TILING_SOFTWARE] : [MATMUL_TILING_SCALAR];
        const want = expected(c, transA, transB, seed);
        const baseline = await run(gpu, c, transA, transB, simple[0], seed);
        assertClose(baseline, want, { ...tolerance(c.k), label: label(c, transA, transB, "") });
        for (const t of [...simple.slice(1), ...candidates]) {
          const name = "bm" in t ? tiledName(t) : `${t.rows}x${t.cols}`;
          const got = await run(gpu, c, transA, transB, t, seed);
          const where = label(c, transA, transB, name);
          assertClose(got, want, { ...tolerance(c.k), label: where });
          assertEquals(
            new Uint32Array(got.buffer),
            new Uint32Array(baseline.buffer),
            `${where}: bits differ from the software layout`,
          );
        }
        seed += 4;
      }
    },
  );
}
