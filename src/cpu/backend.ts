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
const i = (t: Tensor) => (t as CpuTensor).data as Int32Array;

/** A {@link Backend} that runs each op at once on the host. */
export class CpuBackend implements Backend {
  readonly kind = "cpu" as const;
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

  /** @param precision float type of f32 tensors; `"f64"` for finite-difference checks. */
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
      embeddingForward: count((out, ids, table, N, C) =>
        embedding.embeddingForward(f(out), i(ids), f(table), N, C)
      ),
      embeddingBackward: count((dTable, dOut, order, offsets, V, C) =>
        embedding.embeddingBackward(f(dTable), f(dOut), i(order), i(offsets), V, C)
      ),
      rmsnormForward: count((out, rstd, x, w, N, C, eps) =>
        rmsnorm.rmsnormForward(f(out), f(rstd), f(x), f(w), N, C, eps)
      ),
      rmsnormBackward: count((dx, dw, dOut, x, w, rstd, N, C, acc) =>
        rmsnorm.rmsnormBackward(f(dx), f(dw), f(dOut), f(x), f(w), f(rstd), N, C, acc)
      ),
      rope: count((x, cos, sin, BT, T, H, D, inv) =>
        rope.rope(f(x), f(cos), f(sin), BT, T, H, D, inv)
      ),
      attentionForward: count((out, probs, q, k, v, B, T, H, Hkv, D) =>
        attention.attentionForward(f(out), f(probs), f(q), f(k), f(v), B, T, H, Hkv, D)
      ),
      attentionBackward: count((dq, dk, dv, dS, dOut, q, k, v, probs, B, T, H, Hkv, D) =>
        attention.attentionBackward(
          f(dq),
          f(dk),
          f(dv),
          f(dS),
          f(dOut),
          f(q),
          f(k),
          f(v),
          f(probs),
          B,
          T,
          H,
          Hkv,
          D,
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
      preferenceLoss: count((spec, m, sg, pl, rl, tc, P, scale) =>
        loss.preferenceLoss(spec, f(m), f(sg), f(pl), f(rl), f(tc), P, scale)
      ),
      ktoLoss: count((spec, m, sg, pl, pkl, rl, lb, B, scale) =>
        loss.ktoLoss(spec, f(m), f(sg), f(pl), f(pkl), f(rl), f(lb), B, scale)
      ),
      sumSquares: count((total, partial, g, n) =>
        optimizer.sumSquares(f(total), f(partial), f(g), n)
      ),
      optimizerStep: count((kind, p, g, s1, s2, nsq, hyper, n) =>
        optimizer.optimizerStep(kind, f(p), f(g), f(s1), f(s2), f(nsq), f(hyper), n)
      ),
      ropeAt: count((x, cos, sin, pos, rows, H, D) =>
        decode.ropeAt(f(x), f(cos), f(sin), i(pos), rows, H, D)
      ),
      kvCacheWrite: count((kc, vc, k, v, pos, B, L, Hkv, D) =>
        decode.kvCacheWrite(f(kc), f(vc), f(k), f(v), i(pos), B, L, Hkv, D)
      ),
      decodeAttention: count((out, sc, q, kc, vc, pos, B, L, H, Hkv, D) =>
        decode.decodeAttention(f(out), f(sc), f(q), f(kc), f(vc), i(pos), B, L, H, Hkv, D)
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
