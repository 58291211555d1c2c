/**
 * The WGSL decode kernels against the CPU reference (src/cpu/decode.ts): RoPE at positions,
 * the KV-cache append, one-query attention and the sampling step, on odd sizes.
 */

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { assertClose, gpuTest, randomArray, upload } from "../helpers.ts";
import * as ref from "../../src/cpu/decode.ts";
import { ROW_STATE, type SampleSettings } from "../../src/backend/mod.ts";
import { ropeTables } from "../../src/model/rope_tables.ts";

gpuTest("ropeAt matches the CPU reference", async (gpu) => {
  const rows = 5, H = 3, D = 10, L = 13;
  const { cos, sin } = ropeTables(L, D, 10000);
  const positions = Int32Array.from([0, 12, 3, 7, 7]);
  const x = randomArray(rows * H * D, 1);
  const xt = upload(gpu, x);
  gpu.ops.ropeAt({
    x: xt,
    cos: upload(gpu, cos),
    sin: upload(gpu, sin),
    positions: upload(gpu, positions, "i32"),
    rows,
    H,
    D,
  });
  ref.ropeAt(x, cos, sin, positions, rows, H, D);
  // f32 multiply-adds of one pair: equal up to fused-multiply-add rounding.
  assertClose(await gpu.read(xt), x, { atol: 1e-6, rtol: 1e-6, label: "ropeAt" });
});

for (const D of [18, 16]) {
  gpuTest(
    `kvCacheWrite and decodeAttention match the CPU reference (head_dim ${D})`,
    async (gpu) => {
      const B = 3, L = 11, H = 6, Hkv = 2;
      const kCache = randomArray(B * L * Hkv * D, 2), vCache = randomArray(B * L * Hkv * D, 3);
      const k = randomArray(B * Hkv * D, 4), v = randomArray(B * Hkv * D, 5);
      const q = randomArray(B * H * D, 6);
      const positions = Int32Array.from([0, 10, 5]);
      const kc = upload(gpu, kCache), vc = upload(gpu, vCache), pos = upload(gpu, positions, "i32");
      const out = gpu.alloc("activations", B * H * D), scores = gpu.alloc("activations", B * H * L);
      gpu.ops.kvCacheWrite({
        kCache: kc,
        vCache: vc,
        k: upload(gpu, k),
        v: upload(gpu, v),
        positions: pos,
        B,
        L,
        Hkv,
        D,
      });
      gpu.ops.decodeAttention({
        out,
        scores,
        q: upload(gpu, q),
        kCache: kc,
        vCache: vc,
        positions: pos,
        B,
        L,
        H,
        Hkv,
        D,
      });
      ref.kvCacheWrite(kCache, vCache, k, v, positions, B, L, Hkv, D);
      const expected = new Float32Array(B * H * D);
      ref.decodeAttention(
        expected,
        new Float32Array(B * H * L),
        q,
        kCache,
        vCache,
        positions,
        B,
        L,
        H,
        Hkv,
        D,
      );
      assertEquals(await gpu.read(kc), kCache);
      assertEquals(await gpu.read(vc), vCache);
      // f32 dot products and an online softmax on the device vs float64 two-pass sums on the host.
      assertClose(await gpu.read(out), expected, { atol: 2e-6, rtol: 2e-5, label: "attention" });
    },
  );
}

/** Runs one sampling step on both backends from the same state; returns the GPU's and CPU's. */
async function sampleBoth(
  gpu: Parameters<Parameters<typeof gpuTest>[1]>[0],
  logits: Float32Array,
  B: number,
  V: number,
  settings: SampleSettings,
  rowState: Int32Array,
) {
  const stride = 4, maxNew = settings.maxNewTokens;
  const prompts = Int32Array.from({ length: B * stride }, (_, i) => i % V);
  const positions = new Int32Array(B).fill(2);
  const host = {
    tokens: new Int32Array(B),
    positions: positions.slice(),
    rowState: rowState.slice(),
    outTokens: new Int32Array(B * maxNew).fill(-1),
    outLogps: new Float32Array(B * maxNew),
  };
  const rows = {
    tokens: upload(gpu, host.tokens, "i32"),
    positions: upload(gpu, positions, "i32"),
    rowState: upload(gpu, rowState, "i32"),
    prompts: upload(gpu, prompts, "i32"),
    promptStride: stride,
    outTokens: upload(gpu, host.outTokens, "i32"),
    outLogps: upload(gpu, host.outLogps),
  };
  gpu.ops.sampleTokens(rows, upload(gpu, logits), B, V, settings);
  ref.sampleTokens(
    host.tokens,
    host.positions,
    host.rowState,
    prompts,
    host.outTokens,
    host.outLogps,
    logits,
    B,
    V,
    stride,
    settings,
  );
  const device = {
    tokens: await gpu.read(rows.tokens),
    positions: await gpu.read(rows.positions),
    rowState: await gpu.read(rows.rowState),
    outTokens: await gpu.read(rows.outTokens),
    outLogps: await gpu.read(rows.outLogps),
  };
  return { device, host };
}

gpuTest(
  "sampleTokens matches the CPU reference (greedy, temperature, top-k, top-p)",
  async (gpu) => {
    // 6 rows; V = 701 > 256 so every invocation of a row's workgroup reduces several logits.
    const B = 6, V = 701;
    const logits = randomArray(B * V, 7, 4);
    const rowState = new Int32Array(B * ROW_STATE);
    for (let b = 0; b < B; b++) rowState.set([b % 2, 0, 100 + b, 1], b * ROW_STATE);
    const cases: SampleSettings[] = [
      { maxNewTokens: 3, temperature: 0 },
      { maxNewTokens: 3, temperature: 1, seed: 11 },
      { maxNewTokens: 3, temperature: 0.7, topK: 20, seed: 12 },
      { maxNewTokens: 3, temperature: 1.3, topP: 0.9, seed: 13 },
      { maxNewTokens: 3, temperature: 1, topK: 50, topP: 0.5, seed: 14 },
      { maxNewTokens: 3, temperature: 1, topK: 1, seed: 15 },
    ];
    for (const settings of cases) {
      const { device, host } = await sampleBoth(gpu, logits, B, V, settings, rowState);
      const label = JSON.stringify(settings);
      // Away from near-ties of the perturbed logits, the same token on both backends.
      assertEquals([...device.outTokens], [...host.outTokens], label);
      assertEquals([...device.tokens], [...host.tokens], label);
      assertEquals([...device.rowState], [...host.rowState], label);
      assertEquals([...device.positions], [...host.positions], label);
      assertClose(device.outLogps, host.outLogps, { atol: 2e-5, rtol: 1e-5, label });
    }
  },
);

gpuTest(
  "sampleTokens on the device follows the prompt, EOS and maxNewTokens rules",
  async (gpu) => {
    const B = 4, V = 37;
    const logits = randomArray(B * V, 8, 3);
    const argmax = (b: number) => {
      let best = 0;
      for (let i = 1; i < V; i++) if (logits[b * V + i] > logits[b * V + best]) best = i;
      return best;
    };
    // Row 0 in its prompt; row 1 finished; row 2 at its last allowed token; row 3 hits EOS.
    const rowState = Int32Array.from([0, 0, 0, 4, 1, 1, 1, 1, 1, 0, 2, 1, 0, 0, 3, 1]);
    const settings = { maxNewTokens: 2, temperature: 0, eosTokenIds: [argmax(3)], padTokenId: 5 };
    const { device, host } = await sampleBoth(gpu, logits, B, V, settings, rowState);
    assertEquals([...device.tokens], [...host.tokens]);
    assertEquals(device.tokens[1], 5);
    assertEquals([...device.rowState], [0, 0, 0, 4, 1, 1, 1, 1, 2, 1, 2, 1, 1, 1, 3, 1]);
    assertEquals([...device.outTokens], [-1, -1, -1, -1, -1, argmax(2), argmax(3), -1]);
  },
);
