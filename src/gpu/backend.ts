/**
 * The WebGPU backend: the {@link Backend} interface over a {@link GpuContext}, each op recorded
 * by the kernel module that holds its WGSL (`src/gpu/kernels/<op>.ts`).
 *
 * @module
 */

import type { Backend, DType, OptimizerHyper, Role, Tensor } from "../backend/mod.ts";
import { packHyper } from "../backend/mod.ts";
import { GpuContext, type GpuTensor } from "./context.ts";
import { type GpuDevice, requestDevice } from "./device.ts";
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
import * as kl from "./kernels/kl.ts";

/** A {@link Backend} that records WGSL dispatches and submits them once per step. */
export class GpuBackend implements Backend {
  readonly kind = "webgpu" as const;
  readonly ctx: GpuContext;
  readonly ops: Backend["ops"];

  constructor(gpu: GpuDevice) {
    const ctx = this.ctx = new GpuContext(gpu);
    this.ops = {
      matmul: (...a) => matmul.matmul(ctx, ...a),
      colSum: (...a) => matmul.colSum(ctx, ...a),
      add: (...a) => elementwise.add(ctx, ...a),
      copy: (...a) => elementwise.copy(ctx, ...a),
      fill: (...a) => elementwise.fill(ctx, ...a),
      embeddingForward: (...a) => embedding.embeddingForward(ctx, ...a),
      embeddingBackward: (...a) => embedding.embeddingBackward(ctx, ...a),
      rmsnormForward: (...a) => rmsnorm.rmsnormForward(ctx, ...a),
      rmsnormBackward: (...a) => rmsnorm.rmsnormBackward(ctx, ...a),
      rope: (...a) => rope.rope(ctx, ...a),
      attentionForward: (...a) => attention.attentionForward(ctx, ...a),
      attentionBackward: (...a) => attention.attentionBackward(ctx, ...a),
      swigluForward: (...a) => swiglu.swigluForward(ctx, ...a),
      swigluBackward: (...a) => swiglu.swigluBackward(ctx, ...a),
      logitsForward: (...a) => logits.logitsForward(ctx, ...a),
      logitsBackward: (...a) => logits.logitsBackward(ctx, ...a),
      sequenceSum: (...a) => logits.sequenceSum(ctx, ...a),
      broadcastSequence: (...a) => logits.broadcastSequence(ctx, ...a),
      weightedSum: (...a) => loss.weightedSum(ctx, ...a),
      preferenceLoss: (...a) => loss.preferenceLoss(ctx, ...a),
      ktoLoss: (...a) => loss.ktoLoss(ctx, ...a),
      sumSquares: (...a) => optimizer.sumSquares(ctx, ...a),
      optimizerStep: (...a) => optimizer.optimizerStep(ctx, ...a),
      ropeAt: (...a) => decode.ropeAt(ctx, ...a),
      kvCacheWrite: (...a) => decode.kvCacheWrite(ctx, ...a),
      decodeAttention: (...a) => decode.decodeAttention(ctx, ...a),
      sampleTokens: (...a) => decode.sampleTokens(ctx, ...a),
      klRows: (...a) => kl.klRows(ctx, ...a),
    };
  }

  /** Opens the adapter with its maximum limits and returns a backend on it. */
  static async create(): Promise<GpuBackend> {
    return new GpuBackend(await requestDevice());
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
