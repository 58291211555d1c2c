/**
 * The WebGPU backend: the {@link Backend} interface over a {@link GpuContext}, each op recorded
 * by the kernel module that holds its WGSL (`src/gpu/kernels/<op>.ts`).
 *
 * @module
 */

import type { Backend, DType, OptimizerHyper, Role, Tensor } from "../backend/mod.ts";
import { packHyper } from "../backend/mod.ts";
import { GpuContext, type GpuContextOptions, type GpuTensor } from "./context.ts";
import { type GpuDevice, requestDevice } from "./device.ts";
import { decode16 } from "../io/half.ts";
import * as matmul from "./kernels/matmul.ts";
import * as elementwise from "./kernels/elementwise.ts";
import * as embedding from "./kernels/embedding.ts";
import * as rmsnorm from "./kernels/rmsnorm.ts";
import * as rope from "./kernels/rope.ts";
import * as swiglu from "./kernels/swiglu.ts";
import * as attention from "./kernels/attention.ts";
import * as logits from "./kernels/logits.ts";
import * as optimizer from "./kernels/optimizer.ts";
import * as loss from "./kernels/loss.ts";
import * as decode from "./kernels/decode.ts";
import * as sample from "./kernels/sample.ts";
import * as kl from "./kernels/kl.ts";
import * as split from "./split.ts";
import * as lmHead from "./lm_head.ts";

/** A {@link Backend} that records WGSL dispatches and submits them once per step. */
export class GpuBackend implements Backend {
  readonly kind = "webgpu" as const;
  /**
   * The kernels' device context (buffers, pipelines, the command encoder), for kernel tests and
   * the benchmark; not part of the library's interface.
   *
   * @ignore
   */
  readonly ctx: GpuContext;
  readonly ops: Backend["ops"];

  /** A backend on a device from {@link requestDevice}; {@link GpuBackend.create} does both. */
  constructor(gpu: GpuDevice, options: GpuContextOptions = {}) {
    const ctx = this.ctx = new GpuContext(gpu, options);
    const view = (t: Tensor, offset: number, size: number) =>
      ctx.view(t as GpuTensor, offset, size);
    this.ops = {
      matmul: (...a) => split.matmul(ctx, ...a),
      colSum: (...a) => matmul.colSum(ctx, ...a),
      add: (out, x, y, n) =>
        split.needsSlices(ctx, n, [out, x, y])
          ? split.eachSlice(
            ctx,
            n,
            (o, size) =>
              elementwise.add(ctx, view(out, o, size), view(x, o, size), view(y, o, size), size),
          )
          : elementwise.add(ctx, out, x, y, n),
      copy: (out, x, n, accumulate) =>
        split.needsSlices(ctx, n, [out, x])
          ? split.eachSlice(
            ctx,
            n,
            (o, size) =>
              elementwise.copy(ctx, view(out, o, size), view(x, o, size), size, accumulate),
          )
          : elementwise.copy(ctx, out, x, n, accumulate),
      fill: (out, value, n) =>
        split.needsSlices(ctx, n, [out])
          ? split.eachSlice(
            ctx,
            n,
            (o, size) => elementwise.fill(ctx, view(out, o, size), value, size),
          )
          : elementwise.fill(ctx, out, value, n),
      dropout: (a) => elementwise.dropout(ctx, a),
      embeddingForward: (...a) => embedding.embeddingForward(ctx, ...a),
      embeddingBackward: (...a) => embedding.embeddingBackward(ctx, ...a),
      rmsnormForward: (a) => rmsnorm.rmsnormForward(ctx, a.out, a.rstd, a.x, a.w, a.N, a.C, a.eps),
      rmsnormBackward: (a) =>
        rmsnorm.rmsnormBackward(
          ctx,
          a.dx,
          a.dw,
          a.dOut,
          a.x,
          a.w,
          a.rstd,
          a.N,
          a.C,
          a.accumulateDx,
        ),
      rope: (a) => rope.rope(ctx, a.x, a.cos, a.sin, a.rows, a.T, a.H, a.D, a.inverse),
      attentionForward: (args) =>
        split.perSequence(
          ctx,
          args,
          (a) =>
            attention.attentionForward(
              ctx,
              a.out,
              a.stats,
              a.q,
              a.k,
              a.v,
              a.B,
              a.T,
              a.H,
              a.Hkv,
              a.D,
            ),
        ),
      attentionBackward: (args) =>
        split.perSequence(ctx, args, (a) =>
          attention.attentionBackward(
            ctx,
            a.dq,
            a.dk,
            a.dv,
            a.rowDot,
            a.dOut,
            a.q,
            a.k,
            a.v,
            a.out,
            a.stats,
            a.B,
            a.T,
            a.H,
            a.Hkv,
            a.D,
          )),
      swigluForward: (...a) => swiglu.swigluForward(ctx, ...a),
      swigluBackward: (...a) => swiglu.swigluBackward(ctx, ...a),
      logitsForward: (...a) => logits.logitsForward(ctx, ...a),
      logitsBackward: (...a) => logits.logitsBackward(ctx, ...a),
      sequenceSum: (...a) => logits.sequenceSum(ctx, ...a),
      broadcastSequence: (...a) => logits.broadcastSequence(ctx, ...a),
      // The fused LM head on hardware layouts only: its sums differ in order from the software
      // default's matmul + row statistics, whose bits the default pipeline keeps.
      ...(ctx.layouts === "hardware"
        ? {
          lmHeadPlan: (...a) => lmHead.lmHeadPlan(ctx, ...a),
          lmHeadForward: (a) => lmHead.lmHeadForward(ctx, a),
          lmHeadBackward: (a) => lmHead.lmHeadBackward(ctx, a),
        } satisfies Partial<Backend["ops"]>
        : {}),
      weightedSum: (...a) => loss.weightedSum(ctx, ...a),
      preferenceLoss: (a) =>
        loss.preferenceLoss(
          ctx,
          a.spec,
          a.metrics,
          a.seqGrad,
          a.policyLogps,
          a.refLogps,
          a.tokenCounts,
          a.winRates,
          a.P,
          a.scale,
        ),
      ktoLoss: (a) =>
        loss.ktoLoss(
          ctx,
          a.spec,
          a.metrics,
          a.seqGrad,
          a.policyLogps,
          a.policyKlLogps,
          a.refLogps,
          a.labels,
          a.B,
          a.scale,
        ),
      sumSquares: (...a) => optimizer.sumSquares(ctx, ...a),
      optimizerStep: (a) =>
        optimizer.optimizerStep(
          ctx,
          a.kind,
          a.params,
          a.grads,
          a.state1,
          a.state2,
          a.gradNormSq,
          a.hyper,
          a.n,
        ),
      ropeAt: (a) => decode.ropeAt(ctx, a.x, a.cos, a.sin, a.positions, a.rows, a.H, a.D),
      kvCacheWrite: (a) =>
        decode.kvCacheWrite(ctx, a.kCache, a.vCache, a.k, a.v, a.positions, a.B, a.L, a.Hkv, a.D),
      decodeAttention: (a) =>
        decode.decodeAttention(
          ctx,
          a.out,
          a.scores,
          a.q,
          a.kCache,
          a.vCache,
          a.positions,
          a.B,
          a.L,
          a.H,
          a.Hkv,
          a.D,
        ),
      sampleTokens: (...a) => sample.sampleTokens(ctx, ...a),
      klRows: (...a) => kl.klRows(ctx, ...a),
    };
  }

  /** Opens the adapter with its maximum limits and returns a backend on it. */
  static async create(options: GpuContextOptions = {}): Promise<GpuBackend> {
    return new GpuBackend(await requestDevice(), options);
  }

  get maxBufferBytes(): number {
    return this.ctx.maxBufferBytes;
  }

  get adapterName(): string {
    return this.ctx.adapterName;
  }

  alloc(role: Role, size: number, dtype: DType = "f32"): Tensor {
    return this.ctx.alloc(role, size, dtype);
  }

  view(parent: Tensor, offset: number, size: number): Tensor {
    return this.ctx.view(parent as GpuTensor, offset, size);
  }

  write(t: Tensor, data: ArrayLike<number>, offset = 0): void {
    // Batches arrive as typed arrays already: pass them through instead of copying.
    const typed = t.dtype === "i32"
      ? (data instanceof Int32Array ? data : Int32Array.from(data))
      : (data instanceof Float32Array ? data : Float32Array.from(data));
    this.ctx.write(t as GpuTensor, typed, offset);
  }

  async read(t: Tensor): Promise<Float32Array | Int32Array> {
    const bytes = await this.ctx.read(t as GpuTensor);
    if (t.dtype === "bf16" || t.dtype === "f16") {
      return decode16(new Uint8Array(bytes), 0, t.size, t.dtype === "bf16" ? "BF16" : "F16");
    }
    return t.dtype === "i32" ? new Int32Array(bytes) : new Float32Array(bytes);
  }

  writeHyper(t: Tensor, hyper: OptimizerHyper): void {
    this.ctx.write(t as GpuTensor, packHyper(hyper));
  }

  submit(): void {
    this.ctx.submit();
  }

  bytesByRole(): Record<Role, number> {
    return this.ctx.bytesByRole();
  }

  counters(): { dispatches: number; submits: number; readbacks: number } {
    return { ...this.ctx.stats };
  }

  destroy(): void {
    this.ctx.destroy();
  }
}
