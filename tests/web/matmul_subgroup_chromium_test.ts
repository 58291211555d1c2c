/**
 * The subgroup matmul (src/gpu/kernels/matmul_subgroup.ts) where an adapter has `subgroups`:
 * Chromium's SwiftShader (llvmpipe in Deno lacks the feature). Each case runs both subgroup
 * candidates and a workgroup-tiled one on the same page's device, all four transposes, vec4 and
 * scalar bindings, a bias and accumulation, at sizes that are no multiple of a tile or of the
 * subgroup size: the subgroup outputs must be the tiled one's bits, and near a float64 reference.
 */

import assert from "node:assert/strict";
import { webGpuTest } from "./chromium.ts";
import type { MatmulVariant } from "../../src/gpu/kernels/matmul.ts";
import {
  SUBGROUP_CANDIDATES,
  subgroupGroups,
  subgroupMatmulWgsl,
  subgroupName,
} from "../../src/gpu/kernels/matmul_subgroup.ts";
import {
  TILED_CANDIDATES,
  tiledGroups,
  tiledMatmulWgsl,
  tiledWorkgroupBytes,
} from "../../src/gpu/kernels/matmul_tiled.ts";
import { randomArray } from "../helpers.ts";

interface Run {
  name: string;
  wgsl: string;
  groups: [number, number];
}

/** Runs each kernel on the same inputs in the page; returns each output's bits. Self-contained. */
async function runInPage(input: {
  runs: Run[];
  M: number;
  N: number;
  K: number;
  accumulate: boolean;
  a: number[];
  b: number[];
  bias?: number[];
  prior: number[];
}): Promise<{ adapter: string; subgroups: boolean; outputs: number[][]; problems: string[] }> {
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error("no WebGPU adapter");
  const subgroups = adapter.features.has("subgroups" as GPUFeatureName);
  const info = `${adapter.info.vendor} ${adapter.info.architecture} ${adapter.info.description}`;
  if (!subgroups) return { adapter: info, subgroups, outputs: [], problems: [] };
  const device = await adapter.requestDevice({
    requiredFeatures: ["subgroups" as GPUFeatureName],
  });
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const storage = (data: number[]) => {
    const buffer = device.createBuffer({ size: Math.max(16, data.length * 4), usage });
    device.queue.writeBuffer(buffer, 0, new Float32Array(data));
    return buffer;
  };
  const uniform = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(
    uniform,
    0,
    new Uint32Array([input.M, input.N, input.K, input.accumulate ? 1 : 0]),
  );
  const a = storage(input.a), b = storage(input.b);
  const bias = input.bias ? storage(input.bias) : undefined;
  const outputs: number[][] = [], problems: string[] = [];
  for (const run of input.runs) {
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ code: run.wgsl, label: run.name });
    for (const m of (await module.getCompilationInfo()).messages) {
      problems.push(`${run.name} ${m.type} ${m.lineNum}:${m.linePos}: ${m.message}`);
    }
    const pipeline = await device.createComputePipelineAsync({
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
    const out = storage(input.prior);
    const buffers = [uniform, out, a, b, ...(bias ? [bias] : [])];
    const group = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const staging = device.createBuffer({
      size: Math.max(16, input.prior.length * 4),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(run.groups[0], run.groups[1]);
    pass.end();
    encoder.copyBufferToBuffer(out, 0, staging, 0, staging.size);
    device.queue.submit([encoder.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const bits = new Uint32Array(staging.getMappedRange().slice(0));
    outputs.push(Array.from(bits.subarray(0, input.prior.length)));
    staging.unmap();
    const error = await device.popErrorScope();
    if (error) problems.push(`${run.name}: ${error.message}`);
  }
  device.destroy();
  return { adapter: info, subgroups, outputs, problems };
}

const CASES = [
  { M: 37, N: 29, K: 45, transA: false, transB: false, bias: false, accumulate: false },
  { M: 21, N: 270, K: 36, transA: false, transB: true, bias: true, accumulate: false },
  { M: 20, N: 36, K: 19, transA: true, transB: false, bias: false, accumulate: true },
  { M: 9, N: 13, K: 70, transA: true, transB: true, bias: true, accumulate: true },
];

webGpuTest(
  "the subgroup matmul gives the tiled layout's bits in Chromium (all transposes, any size)",
  async (page) => {
    // One that fits the default 16 KiB of workgroup memory (the page asks for no raised limit).
    const tiled = TILED_CANDIDATES.find((t) => tiledWorkgroupBytes(t) <= 16384)!;
    for (const [i, c] of CASES.entries()) {
      const { M, N, K, transA, transB } = c;
      const v: MatmulVariant = {
        transA,
        transB,
        vecA: (transA ? M : K) % 4 === 0,
        vecB: (transB ? K : N) % 4 === 0,
        vecOut: N % 4 === 0,
        bias: c.bias,
      };
      const a = randomArray(M * K, 10 + i), b = randomArray(K * N, 20 + i);
      const bias = c.bias ? randomArray(N, 30 + i) : undefined;
      const prior = randomArray(M * N, 40 + i);
      const runs: Run[] = [
        { name: "tiled", wgsl: tiledMatmulWgsl(v, tiled), groups: tiledGroups(tiled, M, N) },
        ...SUBGROUP_CANDIDATES.map((t) => ({
          name: subgroupName(t),
          wgsl: subgroupMatmulWgsl(v, t),
          groups: subgroupGroups(t, M, N),
        })),
      ];
      const result = await page.evaluate(runInPage, {
        runs,
        M,
        N,
        K,
        accumulate: c.accumulate,
        a: Array.from(a),
        b: Array.from(b),
        bias: bias && Array.from(bias),
        prior: Array.from(prior),
      });
      assert.match(result.adapter, /swiftshader/i);
      assert.equal(result.subgroups, true, "SwiftShader in Chromium offers subgroups");
      assert.deepEqual(result.problems, []);
      const [want, ...got] = result.outputs;
      for (const [j, bits] of got.entries()) {
        assert.deepEqual(bits, want, `case ${i}: ${runs[j + 1].name} differs from ${runs[0].name}`);
      }
      // And the tiled output is the product (float64 reference, f32 tolerance).
      const values = new Float32Array(Uint32Array.from(want).buffer);
      for (let r = 0; r < M; r++) {
        for (let col = 0; col < N; col++) {
          let sum = 0;
          for (let k = 0; k < K; k++) {
            const x = transA ? a[k * M + r] : a[r * K + k];
            const y = transB ? b[col * K + k] : b[k * N + col];
            sum += x * y;
          }
          if (bias) sum += bias[col];
          if (c.accumulate) sum += prior[r * N + col];
          const got = values[r * N + col];
          assert(Math.abs(got - sum) <= 1e-5 + 1e-5 * Math.abs(sum), `case ${i} (${r},${col})`);
        }
      }
    }
  },
);
