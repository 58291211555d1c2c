/**
 * Ops on tensors larger than the adapter's largest storage binding (`GpuContext.maxBindingElements`;
 * 128 MiB on llvmpipe and by default in many browsers, while a buffer may hold 2 GiB): each is
 * bound in pieces that fit, with results bit-identical to the unsplit op.
 *
 * - elementwise ops (fill, copy, add) run once per aligned slice;
 * - a matmul is split over rows of its output (each piece the same sums), over columns of its
 *   output when the transposed `b` is too large (the piece's columns computed into a dense scratch
 *   and scattered back), or over k when `b` (k, n) is too large: there each piece continues the
 *   previous piece's partial sum (`matmulContinue`), so every output still sums k in ascending
 *   order from 0, one multiply-add per step, as the matmul kernels do. That covers the LM head
 *   over a tied embedding of any vocabulary: logits = lnf W^T (columns), d(lnf) = dLogits W (k),
 *   dW += dLogits^T lnf (rows);
 * - attention runs once per sequence when (B, H, T, T) is too large for one binding.
 *
 * A frozen weight `b` held in half precision (bf16, f16: two elements per u32 word, see
 * ../gpu/half_pack.ts) is cut at offsets of 128 elements (256 bytes, a binding offset), and a
 * piece of k is first widened exactly into an f32 scratch (the embedding gather reads half
 * tables) for the f32 `matmulContinue`: every product is the f32 product the unsplit matmul forms
 * after widening, so the bits are the unsplit run's.
 *
 * The optimizer and the gradient norm split their own dispatches (kernels/optimizer.ts), as does
 * the embedding (kernels/embedding.ts).
 *
 * @module
 */

import type {
  AttentionBackwardArgs,
  AttentionForwardArgs,
  MatmulOptions,
  Tensor,
} from "../backend/mod.ts";
import type { GpuContext, GpuTensor } from "./context.ts";
import * as policy from "./matmul_policy.ts";
import { copyBlock, matmulContinue } from "./kernels/pieces.ts";
import { embeddingForward } from "./kernels/embedding.ts";
import { tensorBytes } from "./half_pack.ts";

const ALIGN = 64; // f32 elements per 256-byte binding offset (half tensors: twice as many)

const isHalf = (t: Tensor) => t.dtype === "bf16" || t.dtype === "f16";

const gcd = (a: number, b: number): number => b === 0 ? a : gcd(b, a % b);

/**
 * The largest count of rows of `width` elements, at most `maxRows`, whose element count is a
 * multiple of the binding alignment (`align` elements: 64 for f32, 128 for a half tensor) for
 * every width in `widths`, so views at its multiples bind.
 */
export function alignedRows(
  ctx: GpuContext,
  widths: number[],
  maxRows: number,
  align = ALIGN,
): number {
  let unit = 1;
  for (const w of widths) {
    const u = align / gcd(w % align || align, align);
    unit = unit * u / gcd(unit, u);
  }
  const limit = Math.min(
    maxRows,
    ...widths.map((w) => Math.floor(ctx.maxBindingElements / Math.max(1, w))),
  );
  const rows = Math.floor(limit / unit) * unit;
  if (rows < 1) {
    throw new Error(
      `rows of [${widths}] elements cannot be split into aligned pieces of at most ` +
        `${ctx.maxBindingElements} elements (the adapter's largest storage binding)`,
    );
  }
  return rows;
}

const scratchByContext = new WeakMap<GpuContext, Map<string, GpuTensor>>();

/** A scratch tensor of at least `size` elements, one per `slot`, grown when too small. */
function scratch(ctx: GpuContext, slot: string, size: number, dtype: "f32" | "i32" = "f32") {
  let pool = scratchByContext.get(ctx);
  if (!pool) scratchByContext.set(ctx, pool = new Map());
  let t = pool.get(slot);
  if (!t || t.size < size) {
    pool.set(slot, t = ctx.alloc("activations", size, dtype));
    // The row ids 0..size-1 of the widening gather, written once per allocation.
    if (dtype === "i32") ctx.write(t, Int32Array.from({ length: size }, (_, i) => i));
  }
  return size === t.size ? t : ctx.view(t, 0, size);
}

/** Rows (rows, width) of a half tensor, widened exactly into an f32 scratch of `slot`. */
function widened(ctx: GpuContext, slot: string, half: Tensor, rows: number, width: number) {
  const wide = scratch(ctx, slot, rows * width);
  embeddingForward(ctx, wide, scratch(ctx, "rowIds", rows, "i32"), half, rows, width);
  return wide;
}

/** Runs `fn(offset, size)` over aligned slices of n elements that each fit one binding. */
export function eachSlice(ctx: GpuContext, n: number, fn: (offset: number, size: number) => void) {
  const slice = Math.floor(ctx.maxBindingElements / ALIGN) * ALIGN;
  for (let offset = 0; offset < n; offset += slice) fn(offset, Math.min(slice, n - offset));
}

/** Whether an elementwise op over n elements of these tensors needs slices. */
export function needsSlices(ctx: GpuContext, n: number, tensors: readonly Tensor[]): boolean {
  return n > ctx.maxBindingElements || tensors.some((t) => t.size > ctx.maxBindingElements);
}

/**
 * The matmul (kernels/matmul.ts) in the layout src/gpu/matmul_policy.ts picks, binding operands
 * larger than one binding in pieces.
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
): void {
  const max = ctx.maxBindingElements;
  // Bytes decide what binds (a half b holds twice the elements of an f32 one in a binding).
  if ([out, a, b].every((t) => tensorBytes(t) <= max * 4)) {
    return policy.matmul(ctx, out, a, b, m, n, k, options);
  }
  const { transA = false, transB = false, accumulate = false, bias } = options;
  // Pieces of b start at multiples of the binding offset in b's own element size.
  const bAlign = isHalf(b) ? 2 * ALIGN : ALIGN;
  const view = (t: Tensor, offset: number, size: number) => ctx.view(t as GpuTensor, offset, size);
  if (m * n > max || (!transA && m * k > max)) {
    // Rows of out (and of a unless transposed): every piece computes the same sums.
    const rows = alignedRows(ctx, transA ? [n] : [n, k], m);
    for (let m0 = 0; m0 < m; m0 += rows) {
      const pm = Math.min(rows, m - m0);
      let aPiece: Tensor;
      if (transA) {
        // a (k, m): gather columns m0..m0+pm into a dense (k, pm).
        aPiece = scratch(ctx, "rowsA", k * pm);
        copyBlock(ctx, aPiece, a, k, pm, {
          srcStride: m,
          srcOffset: m0,
          dstStride: pm,
          dstOffset: 0,
        });
      } else aPiece = view(a, m0 * k, pm * k);
      matmul(ctx, view(out, m0 * n, pm * n), aPiece, b, pm, n, k, options);
    }
    return;
  }
  if (transA && m * k > max) {
    throw new Error(`matmul: a transposed (${k}, ${m}) exceeds one binding; not supported`);
  }
  if (transB) {
    // b (n, k): pieces of its rows give columns of out, computed into a dense (m, pn) scratch.
    const cols = alignedRows(ctx, bias ? [k, 1] : [k], n, bAlign);
    for (let n0 = 0; n0 < n; n0 += cols) {
      const pn = Math.min(cols, n - n0);
      const part = scratch(ctx, "out", m * pn);
      const block = { srcStride: n, srcOffset: n0, dstStride: pn, dstOffset: 0 };
      if (accumulate) copyBlock(ctx, part, out, m, pn, block);
      matmul(ctx, part, a, view(b, n0 * k, pn * k), m, pn, k, {
        transA,
        transB,
        accumulate,
        bias: bias && view(bias, n0, pn),
      });
      copyBlock(ctx, out, part, m, pn, {
        srcStride: pn,
        srcOffset: 0,
        dstStride: n,
        dstOffset: n0,
      });
    }
    return;
  }
  // b (k, n): pieces of k, each continuing the partial sums the previous one stored.
  const depth = alignedRows(ctx, transA ? [n, m] : [n], k, bAlign);
  const partial = scratch(ctx, "partial", m * n);
  for (let k0 = 0; k0 < k; k0 += depth) {
    const pk = Math.min(depth, k - k0);
    let aPiece: Tensor;
    if (transA) aPiece = view(a, k0 * m, pk * m);
    else {
      aPiece = scratch(ctx, "depthA", m * pk);
      copyBlock(ctx, aPiece, a, m, pk, {
        srcStride: k,
        srcOffset: k0,
        dstStride: pk,
        dstOffset: 0,
      });
    }
    const bPiece = view(b, k0 * n, pk * n);
    // matmulContinue reads f32: a half piece is widened (exactly) first.
    const bRead = isHalf(b) ? widened(ctx, "depthB", bPiece, pk, n) : bPiece;
    matmulContinue(ctx, out, partial, aPiece, bRead, { m, n, k: pk, transA }, {
      cont: k0 > 0,
      last: k0 + pk >= k,
      accumulate,
      bias,
    });
  }
}

/** Runs an attention op once per sequence when one of its tensors exceeds one binding. */
export function perSequence<A extends AttentionForwardArgs | AttentionBackwardArgs>(
  ctx: GpuContext,
  args: A,
  run: (args: A) => void,
): void {
  const { B, T, H, Hkv, D } = args;
  if (B * H * T * 2 <= ctx.maxBindingElements && B * T * H * D <= ctx.maxBindingElements) {
    return run(args);
  }
  const sizes: Record<string, number> = {};
  for (const [key, value] of Object.entries(args)) {
    if (typeof value !== "object") continue;
    const name = key as string;
    sizes[name] = name === "stats"
      ? H * T * 2
      : name === "rowDot"
      ? H * T
      : ["q", "out", "dq", "dOut"].includes(name)
      ? T * H * D
      : T * Hkv * D;
  }
  for (let b = 0; b < B; b++) {
    const views: Record<string, unknown> = { ...args, B: 1 };
    for (const [name, size] of Object.entries(sizes)) {
      views[name] = ctx.view((args as unknown as Record<string, GpuTensor>)[name], b * size, size);
    }
    run(views as A);
  }
}
