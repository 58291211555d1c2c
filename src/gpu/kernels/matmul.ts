/**
 * Matmul and column sum in WGSL: the hot path of every projection, its two backward products and
 * the LM head.
 *
 *   out: (M, N)
 *   a:   (M, K), or (K, M) stored when `transA`  (dW = dY^T @ X reads dY this way)
 *   b:   (K, N), or (N, K) stored when `transB`  (y = x @ W^T with W in HF [out, in] layout)
 *   bias: (N)
 *
 * Design (measured on llvmpipe, which runs each workgroup as SIMD lanes on one CPU thread and
 * turns every buffer or workgroup-memory load into a per-lane loop): each invocation owns an
 * R x C register block of the output and reads its operands straight from the storage buffers,
 * four consecutive elements per load along each operand's contiguous axis. Per four steps of k
 * that is R + C loads for R * C four-wide multiply-adds, so the cost of a load is amortised over
 * the block; staging K-tiles through workgroup memory would add a store, a reload and two
 * barriers per tile for no gain there. Where a contiguous axis is a multiple of 4 the operand is
 * bound as `array<vec4<f32>>` (one load per four elements; bindings sit at 256-byte offsets, so
 * such a view is aligned); otherwise the same code runs on four scalar loads. On llvmpipe both
 * cost the same per element; the vec4 views are for hardware GPUs, where they cut transactions.
 * The output tile of a workgroup is 64 x 64, so neighbouring invocations share operand rows
 * in cache.
 *
 * Edges: row and column indices are clamped to the last valid one before the k loop, so the loop
 * has no branches; results of clamped rows and columns are computed and never stored. The k loop
 * runs in steps of four followed by a one-step tail, so no padding enters the sums.
 *
 * Inputs are declared `read_write` although never written: WebGPU forbids binding one GPUBuffer
 * as `read` and `read_write` in one dispatch, even at disjoint ranges, and tensors share arena
 * buffers. Several `read_write` bindings of one buffer are allowed.
 *
 * Determinism: every output element is the sum over k in ascending order, one multiply-add per
 * step, then `+ bias`, then `out +` when accumulating. No atomics, no split-k.
 *
 * @module
 */

import { type GpuContext, type GpuTensor, grid1d, tensorBytes } from "../context.ts";
import type { MatmulOptions, Tensor } from "../../backend/mod.ts";
import { tiledGroups, tiledKernelName, tiledMatmulWgsl, type TiledTiling } from "./matmul_tiled.ts";
import {
  subgroupGroups,
  subgroupKernelName,
  subgroupMatmulWgsl,
  type SubgroupTiling,
} from "./matmul_subgroup.ts";
import { type F16Mode, type WeightDType, weightLoad } from "./weight_load.ts";
import { emitEpilogue } from "./matmul_epilogue.ts";

/** Shape of the register block and of the workgroup of one matmul variant. */
export interface MatmulTiling {
  /** Output rows per invocation (a multiple of 4). */
  rows: number;
  /** Output columns per invocation (a multiple of 4). */
  cols: number;
  /** Workgroup size along columns (x) and rows (y). */
  groupX: number;
  groupY: number;
  /**
   * k steps per loop iteration, 4 (default: four-wide loads along k) or 1 (scalar loads, a quarter
   * of the unrolled code: larger blocks compile in reasonable time).
   */
  kSteps?: 1 | 4;
}

/**
 * The tiling used by {@link matmul}: 16 x 8 register blocks, 8 x 4 invocations, a 64 x 64
 * output tile. On llvmpipe (Mesa 22.3) a load costs about 20 CPU cycles per element per lane
 * whatever its width, so speed grows with the reuse R*C/(R+C) of each loaded element: at 512^3
 * 8x4 blocks gave 0.7, 8x8 1.0, 16x8 1.35, 16x16 1.5 and 32x16 2.0 GFLOP per CPU-second. The
 * compile time of a variant grows with R*C (about 0.5, 1.6, 3.3 and 7 s), and each variant
 * compiles once per process (or once per machine with Mesa's disk cache); 16 x 8 balances the two.
 */
export const MATMUL_TILING: MatmulTiling = { rows: 16, cols: 8, groupX: 8, groupY: 4 };

/**
 * The vec4 tiling on software adapters: 32 x 16 blocks with one k step per iteration (so the
 * unrolled body stays small enough to compile in ~6 s): measured 1.42 / 1.92 / 1.51 GFLOP per
 * CPU-second (NT / NN / TN) against 1.18 / 1.34 / 1.13 for {@link MATMUL_TILING} at the shapes of
 * a d-128 training step, about a quarter off the step.
 */
export const MATMUL_TILING_SOFTWARE: MatmulTiling = {
  rows: 32,
  cols: 16,
  groupX: 4,
  groupY: 4,
  kSteps: 1,
};

/**
 * The tiling of the scalar-load variants (an operand's contiguous axis is not a multiple of 4:
 * odd vocabularies and test shapes, never the projections of a real model): 8 x 8 blocks, about
 * a third of the compile time of {@link MATMUL_TILING} for 75% of its speed.
 */
export const MATMUL_TILING_SCALAR: MatmulTiling = { rows: 8, cols: 8, groupX: 8, groupY: 8 };

/** One compiled form of the matmul kernel. */
export interface MatmulVariant {
  transA: boolean;
  transB: boolean;
  /** `a` bound as vec4: its contiguous axis (k, or m when transA) is a multiple of 4. */
  vecA: boolean;
  /** `b` bound as vec4: its contiguous axis (n, or k when transB) is a multiple of 4. */
  vecB: boolean;
  /** `out` bound as vec4: n is a multiple of 4. */
  vecOut: boolean;
  /** A fourth binding holds the bias (n). */
  bias: boolean;
  /**
   * How `b` is stored: f32 (default), or a frozen bf16 / f16 weight widened to f32 as it is
   * loaded (src/gpu/kernels/weight_load.ts); the sums are the same f32 multiply-adds either way.
   */
  bDtype?: WeightDType;
  /** How f16 `b` words widen (with `bDtype: "f16"`). @default "unpack" */
  f16Mode?: F16Mode;
}

/**
 * WGSL of one matmul variant. Bindings: 1 out (M,N) read_write, 2 a, 3 b, 4 bias (N) if any;
 * uniforms M, N, K, accumulate (0 or 1). Dispatch (ceil(N / (cols*groupX)), ceil(M / (rows*groupY))).
 */
export function matmulWgsl(v: MatmulVariant, tiling: MatmulTiling = MATMUL_TILING): string {
  const { rows: R, cols: C, groupX, groupY } = tiling;
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const comp = ["x", "y", "z", "w"];
  const lines: string[] = [];
  const emit = (s: string) => lines.push(s);

  // Scalar element and four consecutive elements of an operand bound as vec4 or as f32.
  const at = (buf: string, vec: boolean, idx: string) =>
    vec ? `${buf}[(${idx}) >> 2u][(${idx}) & 3u]` : `${buf}[${idx}]`;
  const at4 = (buf: string, vec: boolean, idx: string) =>
    vec
      ? `${buf}[(${idx}) >> 2u]`
      : `vec4<f32>(${buf}[${idx}], ${buf}[${idx} + 1u], ${buf}[${idx} + 2u], ${buf}[${idx} + 3u])`;
  // Four elements along the contiguous axis starting at clamped index `idx[0]`; in the scalar
  // path each component gets its own clamped index so the loads stay inside the operand.
  const gather4 = (buf: string, vec: boolean, base: string, idx: string[]) =>
    vec
      ? `${buf}[(${base} + ${idx[0]}) >> 2u]`
      : `vec4<f32>(${idx.map((i) => `${buf}[${base} + ${i}]`).join(", ")})`;
  // The weight operand b, in its stored dtype (f32 gives the same text as `at` / `at4`).
  const bLoad = weightLoad("bBuf", 3, v.bDtype ?? "f32", v.vecB, { f16Mode: v.f16Mode });
  const bGather4 = (base: string, idx: string[]) =>
    v.vecB
      ? bLoad.at4(`${base} + ${idx[0]}`)
      : `vec4<f32>(${idx.map((i) => bLoad.at(`${base} + ${i}`)).join(", ")})`;

  // a[r][q] and b[q][c4] of one k step, as WGSL expressions, for a four-step (W = 4) body.
  const body4 = () => {
    if (v.transA) {
      for (const q of range(4)) {
        emit(`    let aRow${q} = (kk + ${q}u) * M;`);
        for (const r4 of range(R / 4)) {
          const idx = range(4).map((e) => `ia${4 * r4 + e}`);
          emit(`    let a${q}_${r4} = ${gather4("aBuf", v.vecA, `aRow${q}`, idx)};`);
        }
      }
    } else {
      for (const r of range(R)) emit(`    let a${r} = ${at4("aBuf", v.vecA, `aBase${r} + kk`)};`);
    }
    if (v.transB) {
      for (const c of range(C)) emit(`    let b${c} = ${bLoad.at4(`bBase${c} + kk`)};`);
    } else {
      for (const q of range(4)) {
        emit(`    let bRow${q} = (kk + ${q}u) * N;`);
        for (const c4 of range(C / 4)) {
          const idx = range(4).map((e) => `jb${4 * c4 + e}`);
          emit(`    let b${q}_${c4} = ${bGather4(`bRow${q}`, idx)};`);
        }
      }
    }
    const aExpr = (r: number, q: number) =>
      v.transA ? `a${q}_${r >> 2}.${comp[r & 3]}` : `a${r}.${comp[q]}`;
    const bExpr = (q: number, c4: number) =>
      v.transB
        ? `vec4<f32>(${range(4).map((e) => `b${4 * c4 + e}.${comp[q]}`).join(", ")})`
        : `b${q}_${c4}`;
    for (const q of range(4)) {
      for (const r of range(R)) {
        for (const c4 of range(C / 4)) {
          emit(`    acc${r}_${c4} += ${aExpr(r, q)} * ${bExpr(q, c4)};`);
        }
      }
    }
  };

  // One k step (W = 1) for the tail k % 4.
  const body1 = () => {
    for (const r of range(R)) {
      const idx = v.transA ? `kk * M + ia${r}` : `aBase${r} + kk`;
      emit(`    let a${r} = ${at("aBuf", v.vecA, idx)};`);
    }
    for (const c4 of range(C / 4)) {
      const parts = range(4).map((e) => {
        const c = 4 * c4 + e;
        return bLoad.at(v.transB ? `bBase${c} + kk` : `kk * N + jb${c}`);
      });
      emit(`    let b${c4} = vec4<f32>(${parts.join(", ")});`);
    }
    for (const r of range(R)) {
      for (const c4 of range(C / 4)) emit(`    acc${r}_${c4} += a${r} * b${c4};`);
    }
  };

  const elem = (vec: boolean) => (vec ? "vec4<f32>" : "f32");
  if (bLoad.directives) emit(bLoad.directives.trimEnd());
  emit(
    `// out: (M,N) = a: ${v.transA ? "(K,M)^T" : "(M,K)"} @ b: ${v.transB ? "(N,K)^T" : "(K,N)"}` +
      (v.bias ? " + bias: (N)" : ""),
  );
  emit(`struct Params { M: u32, N: u32, K: u32, accumulate: u32 }`);
  emit(`@group(0) @binding(0) var<uniform> u: Params;`);
  emit(`@group(0) @binding(1) var<storage, read_write> outBuf: array<${elem(v.vecOut)}>;`);
  emit(`@group(0) @binding(2) var<storage, read_write> aBuf: array<${elem(v.vecA)}>;`);
  emit(bLoad.decl);
  if (v.bias) emit(`@group(0) @binding(4) var<storage, read_write> biasBuf: array<f32>;`);
  emit(`@compute @workgroup_size(${groupX}, ${groupY})`);
  emit(
    `fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {`,
  );
  emit(`  let M = u.M; let N = u.N; let K = u.K;`);
  emit(`  let i0 = (wid.y * ${groupY}u + lid.y) * ${R}u;`);
  emit(`  let j0 = (wid.x * ${groupX}u + lid.x) * ${C}u;`);
  // Clamped row and column indices: loads stay in range without branches in the loop.
  for (const r of range(R)) emit(`  let ia${r} = min(i0 + ${r}u, M - 1u);`);
  for (const c of range(C)) emit(`  let jb${c} = min(j0 + ${c}u, N - 1u);`);
  if (!v.transA) { for (const r of range(R)) emit(`  let aBase${r} = ia${r} * K;`); }
  if (v.transB) { for (const c of range(C)) emit(`  let bBase${c} = jb${c} * K;`); }
  for (const r of range(R)) {
    for (const c4 of range(C / 4)) emit(`  var acc${r}_${c4} = vec4<f32>(0.0);`);
  }
  emit(tiling.kSteps === 1 ? `  let K4 = 0u;` : `  let K4 = K & ~3u;`);
  if (tiling.kSteps !== 1) {
    emit(`  for (var kk = 0u; kk < K4; kk += 4u) {`);
    body4();
    emit(`  }`);
  }
  emit(`  for (var kk = K4; kk < K; kk += 1u) {`);
  body1();
  emit(`  }`);
  // Epilogue: + bias, then out + result when accumulating, stored only inside (M, N).
  emitEpilogue(emit, {
    rows: R,
    colGroups: C / 4,
    row: (r) => `i0 + ${r}u`,
    col: (c4) => `j0 + ${4 * c4}u`,
    vecOut: v.vecOut,
    bias: v.bias,
  });
  emit(`}`);
  return lines.join("\n") + "\n";
}

/** Name of a variant in the pipeline cache (one name per distinct WGSL text). */
export function matmulKernelName(v: MatmulVariant, tiling: MatmulTiling = MATMUL_TILING): string {
  const flag = (b: boolean, s: string) => (b ? s : "_");
  return `matmul_${v.transA ? "T" : "N"}${v.transB ? "T" : "N"}_` +
    flag(v.vecA, "a") + flag(v.vecB, "b") + flag(v.vecOut, "o") + flag(v.bias, "+") +
    `_${tiling.rows}x${tiling.cols}_${tiling.groupX}x${tiling.groupY}` +
    (tiling.kSteps === 1 ? "_k1" : "") +
    weightLoad("bBuf", 3, v.bDtype ?? "f32", v.vecB, { f16Mode: v.f16Mode }).tag;
}

/** WGSL text per kernel name, so a step that repeats shapes does not regenerate it. */
const generated = new Map<string, string>();

/**
 * Records out (m,n) (+)= op(a) @ op(b) [+ bias] for any m, n, k >= 0 and all four transpose
 * combinations; bias works with every combination. `out` must not overlap `a`, `b` or `bias`.
 * `tiling` defaults to {@link MATMUL_TILING} ({@link MATMUL_TILING_SOFTWARE} on software
 * adapters) when both operands take vec4 loads, else to {@link MATMUL_TILING_SCALAR}. A
 * {@link TiledTiling} runs the workgroup-memory layout of kernels/matmul_tiled.ts instead (the
 * hardware layouts; src/gpu/matmul_policy.ts picks one per adapter and shape).
 */
export function matmul(
  ctx: GpuContext,
  out: Tensor,
  a: Tensor,
  b: Tensor,
  m: number,
  n: number,
  k: number,
  options: MatmulOptions = {},
  tiling?: MatmulTiling | TiledTiling | SubgroupTiling,
): void {
  const { transA = false, transB = false, accumulate = false, bias } = options;
  checkSize("out", out, m * n);
  checkSize("a", a, m * k);
  checkSize("b", b, k * n);
  if (bias) checkSize("bias", bias, n);
  for (const input of bias ? [a, b, bias] : [a, b]) {
    if (overlaps(out, input)) throw new Error("matmul: out overlaps an input; use another tensor");
  }
  // k = 0 is an empty sum: the kernel stores bias (or 0), plus out when accumulating.
  if (m === 0 || n === 0) return;
  const variant: MatmulVariant = {
    transA,
    transB,
    // A vec4 view needs a whole vec4 (16 bytes) in the binding, hence k > 0.
    vecA: (transA ? m : k) % 4 === 0 && k > 0,
    vecB: (transB ? k : n) % 4 === 0 && k > 0,
    vecOut: n % 4 === 0,
    bias: bias !== undefined,
    ...(b.dtype === "bf16" || b.dtype === "f16" ? { bDtype: b.dtype, f16Mode: ctx.f16Mode } : {}),
  };
  if (a.dtype !== "f32" || out.dtype !== "f32" || bias?.dtype === "bf16" || bias?.dtype === "f16") {
    throw new Error("matmul: only the weight operand b may be held in half precision");
  }
  if (tiling && ("subgroup" in tiling || "bm" in tiling)) {
    if (variant.bDtype) throw new Error("matmul: the hardware layouts read f32 weights only");
    const t = tiling;
    const hw = "subgroup" in t
      ? [
        subgroupKernelName(variant, t),
        () => subgroupMatmulWgsl(variant, t),
        subgroupGroups(t, m, n),
      ] as const
      : [
        tiledKernelName(variant, t),
        () => tiledMatmulWgsl(variant, t),
        tiledGroups(t, m, n),
      ] as const;
    const [name, make, groups] = hw;
    let wgsl = generated.get(name);
    if (!wgsl) generated.set(name, wgsl = make());
    ctx.launch(
      name,
      wgsl,
      bias ? [out, a, b, bias] : [out, a, b],
      [m, n, k, accumulate ? 1 : 0],
      groups,
    );
    return;
  }
  tiling ??= !(variant.vecA && variant.vecB)
    ? MATMUL_TILING_SCALAR
    : ctx.isSoftware
    ? MATMUL_TILING_SOFTWARE
    : MATMUL_TILING;
  const name = matmulKernelName(variant, tiling);
  let wgsl = generated.get(name);
  if (!wgsl) generated.set(name, wgsl = matmulWgsl(variant, tiling));
  ctx.launch(
    name,
    wgsl,
    bias ? [out, a, b, bias] : [out, a, b],
    [m, n, k, accumulate ? 1 : 0],
    [Math.ceil(n / (tiling.cols * tiling.groupX)), Math.ceil(m / (tiling.rows * tiling.groupY))],
  );
}

// x: (rows, cols) -> out: (cols). One invocation per column sums the rows in ascending order.
export const COL_SUM_WGSL = /* wgsl */ `
struct Params { rows: u32, cols: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> outBuf: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = gid.x + gid.y * nwg.x * 64u;
  if (c >= u.cols) { return; }
  var sum = 0.0;
  for (var r = 0u; r < u.rows; r += 1u) { sum += x[r * u.cols + c]; }
  if (u.accumulate != 0u) { sum = outBuf[c] + sum; }
  outBuf[c] = sum;
}
`;

/** Records out (cols) (+)= sum over rows of x (rows, cols): the gradient of a broadcast bias. */
export function colSum(
  ctx: GpuContext,
  out: Tensor,
  x: Tensor,
  rows: number,
  cols: number,
  accumulate: boolean,
): void {
  checkSize("out", out, cols);
  checkSize("x", x, rows * cols);
  if (overlaps(out, x)) throw new Error("colSum: out overlaps x; use another tensor");
  ctx.launch("col_sum", COL_SUM_WGSL, [out, x], [rows, cols, accumulate ? 1 : 0], grid1d(cols, 64));
}

/** Whether two tensors share bytes of one buffer (a writable output may not alias an input). */
function overlaps(x: Tensor, y: Tensor): boolean {
  const [p, q] = [x as GpuTensor, y as GpuTensor];
  if (p.bufferId !== q.bufferId) return false;
  const bytes = tensorBytes;
  return p.offset < q.offset + bytes(q) && q.offset < p.offset + bytes(p);
}

function checkSize(name: string, t: Tensor, needed: number): void {
  if (t.size < needed) {
    throw new Error(`matmul: ${name} has ${t.size} elements, the shape needs ${needed}`);
  }
}
