/**
 * The CPU reference backend: every op in plain TypeScript (`src/cpu/<op>.ts`), in float32 or, for
 * gradient checks, float64. It is the reference the WGSL kernels are tested against and the
 * fallback when no WebGPU adapter exists.
 *
 * @module
 */

import type { Backend, DType, OptimizerHyper, Role, Tensor } from "../backend/mod.ts";
import { packHyper } from "../backend/mod.ts";
import type { FloatArray } from "./types.ts";
import * as matmul from "./matmul.ts";
import * as elementwise from "./elementwise.ts";
import * as embedding from "./embedding.ts";
import * as rmsnorm from "./rmsnorm.ts";
import * as rope from "./rope.ts";
import * as swiglu from "./swiglu.ts";
import * as attention from "./attention.ts";
import * as logits from "./logits.ts";
import * as optimizer from "./optimizer.ts";
import * as loss from "./loss.ts";
import * as decode from "./decode.ts";
import * as kl from "./kl.ts";

/** A tensor on the host: its own typed array (a view for sub-ranges). */
export interface CpuTensor extends Tensor {
  readonly data: FloatArray | Int32Array;
}

const f = (t: Tensor) => (t as CpuTensor).data as FloatArray;
/** The pieces of one flat array (an arena in several tensors) as one array of n elements. */
function joined(pieces: readonly Tensor[], n: number): FloatArray {
  const out = new (f(pieces[0]).constructor as Float32ArrayConstructor)(n);
  let offset = 0;
  for (const p of pieces) {
    out.set(f(p).subarray(0, Math.min(p.size, n - offset)), offset);
    offset += p.size;
  }
  return out;
}
const i = (t: Tensor) => (t as CpuTensor).data as Int32Array;

/** A {@link Backend} that runs each op at once on the host. */
export class CpuBackend implements Backend {
  readonly kind = "cpu" as const;
  /** Float type of f32 tensors: `f64` for finite-difference checks. */
  readonly precision: "f32" | "f64";
  readonly ops: Backend["ops"];
  #bytes: Record<Role, number> = {
    parameters: 0,
    gradients: 0,
    optimizer: 0,
    activations: 0,
    inputs: 0,
  };
  #stats = { dispatches: 0, submits: 0, readbacks: 0 };

  /**
   * A CPU backend.
   *
   * @param precision float type of f32 tensors; `"f64"` for finite-difference checks.
   */
  constructor(precision: "f32" | "f64" = "f32") {
    this.precision = precision;
    const s = this.#stats;
    const count = <A extends unknown[]>(fn: (...a: A) => void) => (...a: A) => {
      s.dispatches++;
      fn(...a);
    };
    this.ops = {
      matmul: count((out, a, b, m, n, k, o = {}) =>
        matmul.matmul(f(out), f(a), f(b), m, n, k, { ...o, bias: o.bias && f(o.bias) })
      ),
      colSum: count((out, x, rows, cols, acc) => matmul.colSum(f(out), f(x), rows, cols, acc)),
      add: count((out, a, b, n) => elementwise.add(f(out), f(a), f(b), n)),
      copy: count((out, a, n, acc) => elementwise.copy(f(out), f(a), n, acc)),
      fill: count((out, v, n) => elementwise.fill(f(out), v, n)),
      dropout: count((a) =>
        elementwise.dropout(
          f(a.out),
          f(a.x),
          a.n,
          a.p,
          a.scale ?? 1,
          a.seed ? i(a.seed)[0] : 0,
          a.salt ?? 0,
          a.accumulate ?? false,
        )
      ),
      embeddingForward: count((out, ids, table, N, C) =>
        embedding.embeddingForward(f(out), i(ids), f(table), N, C)
      ),
      embeddingBackward: count((dTable, dOut, order, offsets, V, C) =>
        embedding.embeddingBackward(f(dTable), f(dOut), i(order), i(offsets), V, C)
      ),
      rmsnormForward: count((a) =>
        rmsnorm.rmsnormForward(f(a.out), f(a.rstd), f(a.x), f(a.w), a.N, a.C, a.eps)
      ),
      rmsnormBackward: count((a) =>
        rmsnorm.rmsnormBackward(
          f(a.dx),
          f(a.dw),
          f(a.dOut),
          f(a.x),
          f(a.w),
          f(a.rstd),
          a.N,
          a.C,
          a.accumulateDx,
        )
      ),
      rope: count((a) => rope.rope(f(a.x), f(a.cos), f(a.sin), a.rows, a.T, a.H, a.D, a.inverse)),
      attentionForward: count((a) =>
        attention.attentionForward(
          f(a.out),
          f(a.stats),
          f(a.q),
          f(a.k),
          f(a.v),
          a.B,
          a.T,
          a.H,
          a.Hkv,
          a.D,
        )
      ),
      attentionBackward: count((a) =>
        attention.attentionBackward(
          f(a.dq),
          f(a.dk),
          f(a.dv),
          f(a.rowDot),
          f(a.dOut),
          f(a.q),
          f(a.k),
          f(a.v),
          f(a.stats),
          a.B,
          a.T,
          a.H,
          a.Hkv,
          a.D,
        )
      ),
      swigluForward: count((out, g, u, n) => swiglu.swigluForward(f(out), f(g), f(u), n)),
      swigluBackward: count((dg, du, dOut, g, u, n) =>
        swiglu.swigluBackward(f(dg), f(du), f(dOut), f(g), f(u), n)
      ),
      logitsForward: count((lse, tl, lg, tg, R, V) =>
        logits.logitsForward(f(lse), f(tl), f(lg), i(tg), R, V)
      ),
      logitsBackward: count((lg, lse, tg, rg, R, V) =>
        logits.logitsBackward(f(lg), f(lse), i(tg), f(rg), R, V)
      ),
      sequenceSum: count((out, tl, S, T) => logits.sequenceSum(f(out), f(tl), S, T)),
      broadcastSequence: count((rg, sg, S, T) => logits.broadcastSequence(f(rg), f(sg), S, T)),
      weightedSum: count((l, sg, sl, w, S, acc) =>
        loss.weightedSum(f(l), f(sg), f(sl), f(w), S, acc)
      ),
      preferenceLoss: count((a) =>
        loss.preferenceLoss(
          a.spec,
          f(a.metrics),
          f(a.seqGrad),
          f(a.policyLogps),
          f(a.refLogps),
          f(a.tokenCounts),
          f(a.winRates),
          a.P,
          a.scale,
        )
      ),
      ktoLoss: count((a) =>
        loss.ktoLoss(
          a.spec,
          f(a.metrics),
          f(a.seqGrad),
          f(a.policyLogps),
          f(a.policyKlLogps),
          f(a.refLogps),
          f(a.labels),
          a.B,
          a.scale,
        )
      ),
      sumSquares: count((total, partial, g, n) =>
        optimizer.sumSquares(
          f(total),
          f(partial),
          Array.isArray(g) ? joined(g, n) : f(g as Tensor),
          n,
        )
      ),
      optimizerStep: count((a) =>
        optimizer.optimizerStep(
          a.kind,
          f(a.params),
          f(a.grads),
          f(a.state1),
          f(a.state2),
          f(a.gradNormSq),
          f(a.hyper),
          a.n,
        )
      ),
      ropeAt: count((a) =>
        decode.ropeAt(f(a.x), f(a.cos), f(a.sin), i(a.positions), a.rows, a.H, a.D)
      ),
      kvCacheWrite: count((a) =>
        decode.kvCacheWrite(
          f(a.kCache),
          f(a.vCache),
          f(a.k),
          f(a.v),
          i(a.positions),
          a.B,
          a.L,
          a.Hkv,
          a.D,
        )
      ),
      decodeAttention: count((a) =>
        decode.decodeAttention(
          f(a.out),
          f(a.scores),
          f(a.q),
          f(a.kCache),
          f(a.vCache),
          i(a.positions),
          a.B,
          a.L,
          a.H,
          a.Hkv,
          a.D,
        )
      ),
      sampleTokens: count((r, logits, B, V, settings) =>
        decode.sampleTokens(
          i(r.tokens),
          i(r.positions),
          i(r.rowState),
          i(r.prompts),
          i(r.outTokens),
          f(r.outLogps),
          f(logits),
          B,
          V,
          r.promptStride,
          settings,
        )
      ),
      klRows: count((out, p, q, tg, R, V) => kl.klRows(f(out), f(p), f(q), i(tg), R, V)),
    };
  }

  get adapterName(): string {
    return `cpu (${this.precision})`;
  }

  /** Host arrays: no limit of their own below the runtime's. */
  readonly maxBufferBytes: number = Number.POSITIVE_INFINITY;

  /** Half-precision frozen weights (bf16, f16) are widened up front: held as f32 (or f64). */
  alloc(role: Role, size: number, dtype: DType = "f32"): Tensor {
    const data = dtype === "i32"
      ? new Int32Array(size)
      : this.precision === "f64"
      ? new Float64Array(size)
      : new Float32Array(size);
    this.#bytes[role] += data.byteLength;
    return { size, dtype, role, data } as CpuTensor;
  }

  view(parent: Tensor, offset: number, size: number): Tensor {
    const p = parent as CpuTensor;
    if (offset + size > p.size) throw new Error("view exceeds its parent tensor");
    return { ...p, size, data: p.data.subarray(offset, offset + size) } as CpuTensor;
  }

  write(t: Tensor, data: ArrayLike<number>, offset = 0): void {
    (t as CpuTensor).data.set(data, offset);
  }

  read(t: Tensor): Promise<Float64Array | Float32Array | Int32Array> {
    this.#stats.readbacks++;
    return Promise.resolve((t as CpuTensor).data.slice());
  }

  writeHyper(t: Tensor, hyper: OptimizerHyper): void {
    const packed = packHyper(hyper);
    // The f64 backend keeps the float64 values of the scalars, as PyTorch's Python floats are.
    const data = (t as CpuTensor).data;
    if (data instanceof Float64Array) {
      data.set([
        hyper.lr,
        hyper.beta1,
        hyper.beta2,
        hyper.eps,
        hyper.weightDecay,
        hyper.lr / (1 - Math.pow(hyper.beta1, hyper.step)),
        Math.sqrt(1 - Math.pow(hyper.beta2, hyper.step)),
        hyper.alpha,
        hyper.momentum,
        packed[9],
        hyper.step,
        1 - hyper.beta1,
        1 - hyper.beta2,
        1 - hyper.alpha,
      ]);
    } else data.set(packed);
  }

  submit(): void {
    this.#stats.submits++;
  }

  bytesByRole(): Record<Role, number> {
    return { ...this.#bytes };
  }

  counters(): { dispatches: number; submits: number; readbacks: number } {
    return { ...this.#stats };
  }

  destroy(): void {}
}
