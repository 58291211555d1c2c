/**
 * The WebGPU execution context: buffer arenas, the pipeline cache, the bind-group cache and the
 * one launcher every kernel goes through.
 *
 * Work is recorded into a single compute pass and submitted once per step (or micro-batch);
 * WebGPU makes each dispatch's storage writes visible to the next dispatch of the same pass.
 * Pipelines, uniform blocks and bind groups are built on first use and reused, so a training
 * step that repeats the same shapes allocates nothing.
 *
 * @module
 */

import type { DType, Role, Tensor } from "../backend/mod.ts";
import type { GpuDevice } from "./device.ts";
import type { F16Mode } from "./kernels/weight_load.ts";
import { elementBytes, packHalf, tensorBytes } from "./half_pack.ts";

export { elementBytes, tensorBytes };
export type { GpuContextOptions, KernelLayouts, KernelTuner } from "./context_options.ts";
import type { GpuContextOptions, KernelTuner } from "./context_options.ts";

/** A tensor on the device: a range of one GPU buffer. */
export interface GpuTensor extends Tensor {
  readonly buffer: GPUBuffer;
  /** Byte offset in `buffer`, a multiple of the storage offset alignment. */
  readonly offset: number;
  /** Id of `buffer`, for cache keys. */
  readonly bufferId: number;
}

/** Workgroup counts of a dispatch. */
export type Groups = readonly [number, number?, number?];

/**
 * The lowest finite f32 as an exact WGSL literal (-(2 - 2^-23) * 2^127), the start of every
 * running max. A decimal such as `-3.4028235e38` lies just beyond it: WGSL makes an
 * unrepresentable f32 literal a shader-creation error, which Chromium's compiler (Tint) enforces
 * and Deno's (naga) does not, so the hexadecimal form is the one both accept.
 */
export const F32_LOWEST = "-0x1.fffffep+127f";

/** Returns the bit pattern of an f32, for packing floats into u32 uniform words. */
export function f32bits(x: number): number {
  F32[0] = x;
  return U32[0];
}
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

const UNIFORM_BLOCK = 256; // bytes per uniform slot (minUniformBufferOffsetAlignment)
const UNIFORM_POOL = 64 * 1024; // bytes per uniform buffer
const ARENA_BLOCK = 64 * 1024 * 1024; // bytes per growable arena block

interface Block {
  buffer: GPUBuffer;
  id: number;
  used: number;
}

/** The context shared by the WebGPU backend and its kernels. */
export class GpuContext {
  readonly device: GPUDevice;
  readonly adapterName: string;
  /**
   * A software adapter (llvmpipe, SwiftShader): kernels pick layouts that suit a CPU running
   * workgroups as SIMD lanes, where every buffer load is a per-lane loop.
   */
  readonly isSoftware: boolean;
  /** The layouts the kernels use, `auto` resolved by {@link isSoftware}. */
  readonly layouts: "hardware" | "software";
  /** The tuner of hardware candidates, if any. */
  readonly tuner?: KernelTuner;
  /** The device this context runs on (the tuner times candidates on a sibling context). */
  readonly gpu: GpuDevice;
  /** How kernels widen f16 weights (see {@link GpuContextOptions.f16Mode}). */
  readonly f16Mode: F16Mode;
  readonly limits: GPUSupportedLimits;
  /**
   * Elements per storage binding at most: the adapter's `maxStorageBufferBindingSize` (lowered by
   * {@link GpuContextOptions.maxBindingBytes} in tests). Larger tensors are bound in pieces
   * (src/gpu/split.ts).
   */
  readonly maxBindingElements: number;
  /** Elements per tensor at most: one tensor lives in one buffer of `maxBufferSize` at most. */
  readonly maxTensorElements: number;
  readonly alignment: number;

  #pipelines = new Map<string, GPUComputePipeline>();
  #sources = new Map<string, string>();
  #bindGroups = new Map<string, GPUBindGroup>();
  #uniformSlots = new Map<string, { buffer: GPUBuffer; offset: number; id: number }>();
  #uniformBuffers: Block[] = [];
  #arenas = new Map<Role, Block[]>();
  #bytes: Record<Role, number> = {
    parameters: 0,
    gradients: 0,
    optimizer: 0,
    activations: 0,
    inputs: 0,
  };
  #nextId = 1;
  #encoder?: GPUCommandEncoder;
  #pass?: GPUComputePassEncoder;
  #buffers: GPUBuffer[] = [];
  #error?: string;
  /** Counters since creation. */
  readonly stats = { dispatches: 0, submits: 0, readbacks: 0 };

  constructor(gpu: GpuDevice, options: GpuContextOptions = {}) {
    this.device = gpu.device;
    this.adapterName = gpu.adapterName;
    this.isSoftware = gpu.isFallback ||
      /llvmpipe|lavapipe|swiftshader|software/i.test(gpu.adapterName);
    this.gpu = gpu;
    const layouts = options.layouts ?? "auto";
    this.layouts = layouts === "auto" ? (this.isSoftware ? "software" : "hardware") : layouts;
    this.tuner = options.tuner;
    this.limits = gpu.limits;
    // WGSL's f16 where the device has shader-f16 (unless `unpack` is asked for), else
    // unpack2x16float; both widen exactly (tests/gpu/weight_load_test.ts).
    this.f16Mode = gpu.shaderF16 && options.f16Mode !== "unpack" ? "native" : "unpack";
    this.alignment = Math.max(256, gpu.limits.minStorageBufferOffsetAlignment);
    this.maxBindingElements = Math.floor(
      Math.min(
        gpu.limits.maxStorageBufferBindingSize,
        gpu.limits.maxBufferSize,
        options.maxBindingBytes ?? Infinity,
      ) / 4,
    );
    this.maxTensorElements = Math.floor(
      Math.floor(gpu.limits.maxBufferSize / this.alignment) * this.alignment / 4,
    );
    // A failed dispatch (bad WGSL, bad binding) fails its whole submit silently; keep the first
    // error and raise it at the next read or finish instead of returning zeros.
    this.device.addEventListener("uncapturederror", (event) => {
      this.#error ??= (event as GPUUncapturedErrorEvent).error.message;
    });
  }

  #raise(): void {
    if (this.#error) {
      const message = this.#error;
      this.#error = undefined;
      throw new Error(`WebGPU error: ${message}`);
    }
  }

  #createBuffer(size: number, usage: number): GPUBuffer {
    const buffer = this.device.createBuffer({ size, usage });
    this.#buffers.push(buffer);
    return buffer;
  }

  /**
   * Allocates a zero-filled tensor in the arena of `role`. Tensors are aligned so that any of
   * them can be bound at its offset; a tensor larger than a block gets a block of its own. A
   * tensor may exceed the largest storage binding (kernels then bind it in pieces, see
   * src/gpu/split.ts) but not the largest buffer.
   */
  alloc(role: Role, size: number, dtype: DType = "f32"): GpuTensor {
    const bytes = tensorBytes({ size, dtype });
    if (bytes > this.maxTensorElements * 4) {
      throw new Error(
        `${role} tensor of ${size} elements exceeds the adapter's largest buffer ` +
          `(${this.maxTensorElements} elements, maxBufferSize ${this.limits.maxBufferSize} ` +
          `bytes); use a smaller batch or model`,
      );
    }
    const aligned = Math.ceil(bytes / this.alignment) * this.alignment;
    let blocks = this.#arenas.get(role);
    if (!blocks) this.#arenas.set(role, blocks = []);
    let block = blocks.find((b) => b.buffer.size - b.used >= aligned);
    if (!block) {
      const blockSize = Math.min(
        Math.max(aligned, ARENA_BLOCK),
        Math.floor(this.limits.maxBufferSize / this.alignment) * this.alignment,
      );
      block = {
        buffer: this.#createBuffer(
          blockSize,
          GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
        ),
        id: this.#nextId++,
        used: 0,
      };
      blocks.push(block);
    }
    const offset = block.used;
    block.used += aligned;
    this.#bytes[role] += aligned;
    return { size, dtype, role, buffer: block.buffer, offset, bufferId: block.id };
  }

  /** A sub-range of `parent`; `offset` (elements) must keep the binding alignment. */
  view(parent: GpuTensor, offset: number, size: number): GpuTensor {
    const byteOffset = parent.offset + offset * elementBytes(parent.dtype);
    if (byteOffset % this.alignment !== 0) {
      throw new Error(`view offset ${offset} is not aligned to ${this.alignment} bytes`);
    }
    if (offset + size > parent.size) throw new Error("view exceeds its parent tensor");
    return { ...parent, offset: byteOffset, size };
  }

  /** Bytes allocated per role. */
  bytesByRole(): Record<Role, number> {
    return { ...this.#bytes };
  }

  /** A compute pipeline for `wgsl`, compiled once per `name`. */
  pipeline(name: string, wgsl: string): GPUComputePipeline {
    let pipeline = this.#pipelines.get(name);
    if (!pipeline) {
      const module = this.device.createShaderModule({ code: wgsl, label: name });
      pipeline = this.device.createComputePipeline({
        label: name,
        layout: "auto",
        compute: { module, entryPoint: "main" },
      });
      this.#pipelines.set(name, pipeline);
      this.#sources.set(name, wgsl);
    }
    return pipeline;
  }

  /** The WGSL of every pipeline compiled so far, by name (the shader-catalog test reads it). */
  compiledShaders(): ReadonlyMap<string, string> {
    return this.#sources;
  }

  #uniform(words: ArrayLike<number>): { buffer: GPUBuffer; offset: number; id: number } {
    const key = Array.prototype.join.call(words, ",");
    let slot = this.#uniformSlots.get(key);
    if (!slot) {
      let block = this.#uniformBuffers.at(-1);
      if (!block || block.used + UNIFORM_BLOCK > UNIFORM_POOL) {
        block = {
          buffer: this.#createBuffer(
            UNIFORM_POOL,
            GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
          ),
          id: this.#nextId++,
          used: 0,
        };
        this.#uniformBuffers.push(block);
      }
      const data = new Uint32Array(UNIFORM_BLOCK / 4);
      data.set(Array.from(words, (w) => w >>> 0));
      this.device.queue.writeBuffer(block.buffer, block.used, data);
      slot = { buffer: block.buffer, offset: block.used, id: block.id };
      block.used += UNIFORM_BLOCK;
      this.#uniformSlots.set(key, slot);
    }
    return slot;
  }

  /**
   * Records one dispatch of kernel `name`. Binding 0 is a uniform block holding `uniforms`
   * (u32 words; pack floats with {@link f32bits}); bindings 1..n are `tensors` in order, each
   * declared as a storage buffer in the WGSL. Every declared binding must be used by the shader.
   */
  launch(
    name: string,
    wgsl: string,
    tensors: readonly Tensor[],
    uniforms: ArrayLike<number>,
    groups: Groups,
  ): void {
    const [x, y = 1, z = 1] = groups;
    if (x === 0 || y === 0 || z === 0) return;
    const maxGroups = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxGroups || y > maxGroups || z > maxGroups) {
      throw new Error(`${name}: dispatch (${x}, ${y}, ${z}) exceeds ${maxGroups} per dimension`);
    }
    const pipeline = this.pipeline(name, wgsl);
    const uniform = this.#uniform(uniforms);
    const views = tensors as readonly GpuTensor[];
    for (let i = 0; i < views.length; i++) {
      if (views[i].size > this.maxBindingElements) {
        throw new Error(
          `${name}: binding ${i + 1} holds ${views[i].size} elements, more than the adapter's ` +
            `largest storage binding (${this.maxBindingElements}); the caller must bind it in ` +
            `pieces (src/gpu/split.ts)`,
        );
      }
    }
    let key = `${name}|${uniform.id}:${uniform.offset}`;
    for (const t of views) key += `|${t.bufferId}:${t.offset}:${t.size}`;
    let bindGroup = this.#bindGroups.get(key);
    if (!bindGroup) {
      bindGroup = this.device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: uniform.buffer, offset: uniform.offset, size: 256 } },
          ...views.map((t, i) => ({
            binding: i + 1,
            resource: { buffer: t.buffer, offset: t.offset, size: tensorBytes(t) },
          })),
        ],
      });
      this.#bindGroups.set(key, bindGroup);
    }
    this.#encoder ??= this.device.createCommandEncoder();
    this.#pass ??= this.#encoder.beginComputePass();
    this.#pass.setPipeline(pipeline);
    this.#pass.setBindGroup(0, bindGroup);
    this.#pass.dispatchWorkgroups(x, y, z);
    this.stats.dispatches++;
  }

  /** Queues a host-to-device copy; it lands before any work submitted afterwards. */
  write(t: GpuTensor, data: ArrayBufferView, offsetElements = 0): void {
    if (t.dtype === "bf16" || t.dtype === "f16") {
      if (offsetElements % 2 !== 0) throw new Error("a half tensor is written at even offsets");
      data = packHalf(data as Float32Array, t.dtype);
    }
    this.device.queue.writeBuffer(
      t.buffer,
      t.offset + offsetElements * elementBytes(t.dtype),
      data.buffer,
      data.byteOffset,
      data.byteLength,
    );
  }

  /** Submits the recorded work, if any. */
  submit(): void {
    if (!this.#encoder) return;
    this.#pass?.end();
    this.device.queue.submit([this.#encoder.finish()]);
    this.#pass = undefined;
    this.#encoder = undefined;
    this.stats.submits++;
  }

  /** Submits pending work and reads `t` back (one mapAsync: keep it out of the step). */
  async read(t: GpuTensor): Promise<ArrayBuffer> {
    const bytes = tensorBytes(t);
    const padded = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({
      size: padded,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.#pass?.end();
    this.#pass = undefined;
    this.#encoder ??= this.device.createCommandEncoder();
    this.#encoder.copyBufferToBuffer(t.buffer, t.offset, staging, 0, padded);
    this.device.queue.submit([this.#encoder.finish()]);
    this.#encoder = undefined;
    this.stats.submits++;
    this.stats.readbacks++;
    await staging.mapAsync(GPUMapMode.READ);
    this.#raise();
    const copy = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    return copy;
  }

  /** Waits until all submitted work has finished. */
  async finish(): Promise<void> {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
    this.#raise();
    if (this.tuner && !this.#tuning) {
      this.#tuning = true;
      try {
        await this.tuner.flush(this);
      } finally {
        this.#tuning = false;
      }
    }
  }
  #tuning = false;

  /** Frees every buffer this context created. */
  destroy(): void {
    this.#pass = undefined;
    this.#encoder = undefined;
    for (const b of this.#buffers) b.destroy();
    this.#buffers = [];
    this.#bindGroups.clear();
    this.#uniformSlots.clear();
    this.#arenas.clear();
  }
}

/**
 * Workgroup counts covering `n` invocations of a 1-D kernel of `workgroupSize`, folded into two
 * dimensions when one is not enough. Kernels recover the linear index as
 * `gid.x + gid.y * nwg.x * WG` (`nwg` = `@builtin(num_workgroups)`).
 */
export function grid1d(n: number, workgroupSize: number, maxPerDim = 65535): [number, number] {
  const groups = Math.ceil(n / workgroupSize);
  if (groups <= maxPerDim) return [groups, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}
