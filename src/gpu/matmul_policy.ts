/**
 * Which matmul layout runs, per adapter and shape: software adapters keep the layout of
 * kernels/matmul.ts (laid out for llvmpipe) unless the hardware layouts are forced; hardware
 * adapters run a workgroup-tiled candidate of kernels/matmul_tiled.ts (or, where the device has
 * `subgroups` and the tuner finds it faster, one of kernels/matmul_subgroup.ts), the tuner's choice for the
 * shape where it has one (src/gpu/tuner.ts), else the built-in one. Every candidate sums
 * in the same order, so the choice changes speed only, never a bit of the result.
 *
 * @module
 */

import type { MatmulOptions, Tensor } from "../backend/mod.ts";
import type { GpuContext } from "./context.ts";
import * as simple from "./kernels/matmul.ts";
import {
  TILED_CANDIDATES,
  tiledFits,
  tiledName,
  type TiledTiling,
} from "./kernels/matmul_tiled.ts";
import {
  SUBGROUP_CANDIDATES,
  subgroupName,
  type SubgroupTiling,
} from "./kernels/matmul_subgroup.ts";

export type { KernelLayouts } from "./context.ts";

/** Environment variable that forces the layouts (`hardware`, `software`, `auto`). */
export const LAYOUTS_ENV = "DPO_KERNEL_LAYOUTS";

/** The key of a matmul shape in the tuner's table, e.g. `NT 1024x576x1536`. */
export function matmulShapeKey(
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
): string {
  return `${transA ? "T" : "N"}${transB ? "T" : "N"} ${m}x${n}x${k}`;
}

/** Parses a shape key `NT 1024x576x1536` back into its parts. */
export function parseShapeKey(key: string) {
  const match = /^([NT])([NT]) (\d+)x(\d+)x(\d+)$/.exec(key);
  if (!match) throw new Error(`bad matmul shape key "${key}"`);
  const [, ta, tb, m, n, k] = match;
  return { transA: ta === "T", transB: tb === "T", m: +m, n: +n, k: +k };
}

/** A hardware matmul candidate: workgroup-tiled, or subgroup-shared where the device has them. */
export type HardwareMatmul = TiledTiling | SubgroupTiling;

/** A candidate's name in the tuner's table, e.g. `tiled128x128x16_8x8` or `subgroup_8`. */
export function matmulCandidateName(t: HardwareMatmul): string {
  return "subgroup" in t ? subgroupName(t) : tiledName(t);
}

/**
 * The hardware candidates the device can run: the tiled ones that fit its limits, in
 * {@link TILED_CANDIDATES} order, then the subgroup ones where it has `subgroups`.
 */
export function candidatesFor(ctx: GpuContext): HardwareMatmul[] {
  const tiled: HardwareMatmul[] = TILED_CANDIDATES.filter((t) => tiledFits(t, ctx.limits));
  return ctx.gpu.subgroups ? [...tiled, ...SUBGROUP_CANDIDATES] : tiled;
}

/**
 * The built-in hardware choice: 128 x 128 x 8 tiles with 8 x 8 blocks where the output has room
 * for a few such tiles, 64 x 64 x 8 with 4 x 4 blocks below that (fewer idle invocations).
 */
export function builtInTiling(ctx: GpuContext, m: number, n: number): TiledTiling | undefined {
  const fits = TILED_CANDIDATES.filter((t) => tiledFits(t, ctx.limits));
  const big = fits.find((t) => t.bm === 128 && t.bk === 8);
  const small = fits.find((t) => t.bm === 64 && t.bk === 8 && t.tm === 4);
  return (m * n >= 4 * 128 * 128 ? big ?? small : small ?? big) ?? fits[0];
}

/**
 * The layout for out (m,n) = op(a) @ op(b) on `ctx`: undefined for the software layout, else the
 * hardware candidate (the tuner's choice, else {@link builtInTiling}).
 */
export function chooseMatmul(
  ctx: GpuContext,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
): HardwareMatmul | undefined {
  if (ctx.layouts === "software") return undefined;
  const tuned = ctx.tuner?.choose(ctx, matmulShapeKey(m, n, k, transA, transB));
  return candidatesFor(ctx).find((t) => matmulCandidateName(t) === tuned) ??
    builtInTiling(ctx, m, n);
}

/** The name of the layout {@link chooseMatmul} picks, for bench rows. */
export function chosenMatmulName(
  ctx: GpuContext,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
): string {
  const t = chooseMatmul(ctx, m, n, k, transA, transB);
  if (t) return matmulCandidateName(t);
  const s = ctx.isSoftware ? simple.MATMUL_TILING_SOFTWARE : simple.MATMUL_TILING;
  return `simple${s.rows}x${s.cols}`;
}

/** {@link simple.matmul} in the layout {@link chooseMatmul} picks. */
export function matmul(
  ctx: GpuContext,
  out: Tensor,
  a: Tensor,
  b: Tensor,
  m: number,
  n: number,
  k: number,
  options: MatmulOptions = {},
): void {
  const { transA = false, transB = false } = options;
  // The tiled family reads f32 weights only: a half weight (frozen bf16/f16) takes the simple one.
  const tiling = b.dtype === "f32" ? chooseMatmul(ctx, m, n, k, transA, transB) : undefined;
  simple.matmul(ctx, out, a, b, m, n, k, options, tiling);
}
