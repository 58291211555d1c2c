/**
 * Throughput measurement of the matmul kernel, for `deno task bench` (not a test).
 *
 * @module
 */

import type { GpuContext } from "./context.ts";
import { matmul, type MatmulTiling } from "./kernels/matmul.ts";
import type { TiledTiling } from "./kernels/matmul_tiled.ts";
import { chooseMatmul } from "./matmul_policy.ts";

/** Options of {@link measureMatmul}. */
export interface MeasureMatmulOptions {
  /** `a` stored as (k, m). @default false */
  transA?: boolean;
  /** `b` stored as (n, k). @default false */
  transB?: boolean;
  /** Dispatches recorded into the one timed submit. @default 10 */
  iterations?: number;
  /** Register block and workgroup shape. @default the one src/gpu/matmul_policy.ts picks */
  tiling?: MatmulTiling | TiledTiling;
}

/**
 * GFLOP/s of out (m,n) = op(a) @ op(b) on `ctx`: one warm-up dispatch (compiles the pipeline and
 * binds the buffers), then `iterations` dispatches recorded into one submit, timed from before
 * recording to `await ctx.finish()`. Counts 2*m*n*k flops per dispatch. Allocates its operands
 * from the "activations" arena (arenas do not free; call it on a context meant for benchmarks).
 *
 * @example
 * ```ts
 * const gpu = await GpuBackend.create();
 * console.log(await measureMatmul(gpu.ctx, 512, 512, 512, { transB: true }));
 * ```
 */
export async function measureMatmul(
  ctx: GpuContext,
  m: number,
  n: number,
  k: number,
  options: MeasureMatmulOptions = {},
): Promise<number> {
  const { transA = false, transB = false, iterations = 10, tiling } = options;
  const a = ctx.alloc("activations", m * k);
  const b = ctx.alloc("activations", k * n);
  const out = ctx.alloc("activations", m * n);
  // Small values keep the sums finite; the speed does not depend on them.
  const fillA = new Float32Array(m * k).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const fillB = new Float32Array(k * n).map((_, i) => ((i * 104729) % 1000) / 1000 - 0.5);
  ctx.write(a, fillA);
  ctx.write(b, fillB);
  // Chosen at each run: the warm-up's finish may tune the shape, and the timed runs use the choice.
  const run = () =>
    matmul(
      ctx,
      out,
      a,
      b,
      m,
      n,
      k,
      { transA, transB },
      tiling ?? chooseMatmul(ctx, m, n, k, transA, transB),
    );
  run();
  await ctx.finish();
  const start = performance.now();
  for (let i = 0; i < iterations; i++) run();
  await ctx.finish();
  const seconds = (performance.now() - start) / 1000;
  return (2 * m * n * k * iterations) / seconds / 1e9;
}
