/**
 * CPU reference of the decode ops: RoPE at per-row positions and one-query attention over a KV
 * cache against the full-sequence ops, and the sampling rules (greedy, temperature, top-k, top-p,
 * the row state machine) against their definitions.
 */

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { assertClose, randomArray } from "../helpers.ts";
import {
  decodeAttention,
  kvCacheWrite,
  ropeAt,
  sampleRow,
  sampleTokens,
} from "../../src/cpu/decode.ts";
import { ROW_STATE } from "../../src/backend/mod.ts";
import { rope } from "../../src/cpu/rope.ts";
import { attentionForward } from "../../src/cpu/attention.ts";
import { ropeTables } from "../../src/model/rope_tables.ts";

Deno.test("ropeAt at positions r % T equals rope on (B*T, H, D)", () => {
  const B = 2, T = 5, H = 3, D = 6;
  const { cos, sin } = ropeTables(T, D, 10000);
  const x = randomArray(B * T * H * D, 1);
  const expected = x.slice();
  rope(expected, cos, sin, B * T, T, H, D, false);
  const positions = Int32Array.from({ length: B * T }, (_, r) => r % T);
  ropeAt(x, cos, sin, positions, B * T, H, D);
  assertClose(x, expected, { atol: 0, rtol: 0, label: "ropeAt" });
});

Deno.test("decodeAttention over a filled cache equals the causal forward's row at each position", () => {
  const B = 2, T = 7, H = 4, Hkv = 2, D = 6, L = 9;
  const q = randomArray(B * T * H * D, 2), k = randomArray(B * T * Hkv * D, 3);
  const v = randomArray(B * T * Hkv * D, 4);
  const full = new Float32Array(B * T * H * D);
  attentionForward(full, new Float32Array(B * H * T * 2), q, k, v, B, T, H, Hkv, D);
  const kCache = new Float32Array(B * L * Hkv * D), vCache = new Float32Array(B * L * Hkv * D);
  const W = Hkv * D;
  for (let t = 0; t < T; t++) {
    const rowsK = new Float32Array(B * W), rowsV = new Float32Array(B * W);
    for (let b = 0; b < B; b++) {
      rowsK.set(k.subarray((b * T + t) * W, (b * T + t + 1) * W), b * W);
      rowsV.set(v.subarray((b * T + t) * W, (b * T + t + 1) * W), b * W);
    }
    kvCacheWrite(kCache, vCache, rowsK, rowsV, new Int32Array(B).fill(t), B, L, Hkv, D);
    const qt = new Float32Array(B * H * D), out = new Float32Array(B * H * D);
    const expected = new Float32Array(B * H * D);
    for (let b = 0; b < B; b++) {
      qt.set(q.subarray((b * T + t) * H * D, (b * T + t + 1) * H * D), b * H * D);
      expected.set(full.subarray((b * T + t) * H * D, (b * T + t + 1) * H * D), b * H * D);
    }
    decodeAttention(
      out,
      new Float32Array(B * H * L),
      qt,
      kCache,
      vCache,
      new Int32Array(B).fill(t),
      B,
      L,
      H,
      Hkv,
      D,
    );
    // Same formula and summation order in float64: equal up to the final f32 rounding.
    assertClose(out, expected, { atol: 1e-7, rtol: 1e-6, label: `t=${t}` });
  }
});

const LOGITS = [1.2, -0.3, 2.5, 2.5, 0.1, -1, 0.7];

Deno.test("sampleRow at temperature 0 is the argmax, the lowest id on ties, with its log-prob", () => {
  const { token, logp } = sampleRow(
    LOGITS,
    LOGITS.length,
    { maxNewTokens: 1, temperature: 0 },
    0,
    0,
  );
  assertEquals(token, 2);
  const lse = Math.log(LOGITS.reduce((s, l) => s + Math.exp(l), 0));
  assertClose([logp], [2.5 - lse], { atol: 1e-12, label: "logp" });
});

function frequencies(
  settings: { temperature: number; topK?: number; topP?: number },
  draws: number,
) {
  const counts = new Array(LOGITS.length).fill(0);
  for (let step = 0; step < draws; step++) {
    counts[
      sampleRow(LOGITS, LOGITS.length, { maxNewTokens: 1, ...settings, seed: 5 }, 1, step).token
    ]++;
  }
  return counts.map((c) => c / draws);
}

function softmax(z: number[]): number[] {
  const m = Math.max(...z);
  const e = z.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

Deno.test("sampleRow draws follow softmax(logits / temperature)", () => {
  for (const temperature of [1, 2.5]) {
    const expected = softmax(LOGITS.map((l) => l / temperature));
    // 20000 draws: the standard error of a frequency is below 0.004; allow 0.015.
    assertClose(frequencies({ temperature }, 20000), expected, {
      atol: 0.015,
      rtol: 0,
      label: `T=${temperature}`,
    });
  }
});

Deno.test("sampleRow top-k keeps the k largest (ties at the k-th value included)", () => {
  const f2 = frequencies({ temperature: 1, topK: 2 }, 4000);
  assertClose(f2, [0, 0, 0.5, 0.5, 0, 0, 0], { atol: 0.03, rtol: 0, label: "k=2" });
  // k = 1 with a tie at the top keeps both tied tokens, as HF's TopKLogitsWarper does.
  const f1 = frequencies({ temperature: 1, topK: 1 }, 2000);
  assertEquals(f1.map((f) => f > 0), [false, false, true, true, false, false, false]);
  const f3 = frequencies({ temperature: 1, topK: 3 }, 8000);
  const p3 = softmax([1.2, 2.5, 2.5]);
  assertClose([f3[0], f3[2], f3[3]], p3, { atol: 0.02, rtol: 0, label: "k=3" });
});

Deno.test("sampleRow top-p keeps the smallest most likely set reaching p (HF nucleus)", () => {
  const probs = softmax(LOGITS);
  const order = [...probs.keys()].sort((a, b) => probs[b] - probs[a]);
  for (const topP of [0.3, 0.6, 0.8, 0.95]) {
    // HF: sort ascending, drop tokens whose cumulative probability <= 1 - p.
    const kept = new Set<number>();
    let above = 0;
    for (const i of order) {
      if (above < topP) kept.add(i);
      above += probs[i];
    }
    // The tie at the top (ids 2 and 3) is kept whole.
    if (kept.has(2) || kept.has(3)) kept.add(2).add(3);
    const f = frequencies({ temperature: 1, topP }, 6000);
    const mass = [...kept].reduce((s, i) => s + probs[i], 0);
    const expected = probs.map((p, i) => kept.has(i) ? p / mass : 0);
    assertClose(f, expected, { atol: 0.025, rtol: 0, label: `p=${topP}` });
  }
});

Deno.test("sampleRow is a function of (seed, stream, step)", () => {
  const s = { maxNewTokens: 1, temperature: 1.5 };
  const draw = (seed: number, stream: number) =>
    Array.from(
      { length: 40 },
      (_, step) => sampleRow(LOGITS, 7, { ...s, seed }, stream, step).token,
    );
  assertEquals(draw(3, 0), draw(3, 0));
  assertEquals(draw(3, 0).join() === draw(4, 0).join(), false);
  assertEquals(draw(3, 0).join() === draw(3, 1).join(), false);
});

Deno.test("sampleTokens feeds the prompt, samples after it, stops at EOS and at maxNewTokens", () => {
  const B = 3, V = 4, stride = 5, maxNew = 2;
  // Row 0: prompt [1, 2, 3] still in its prompt at position 0. Row 1: prompt [2], greedy -> 3
  // (EOS). Row 2: prompt [0], greedy -> 1, already one token generated, so maxNew ends it.
  const prompts = Int32Array.from([1, 2, 3, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const positions = Int32Array.from([0, 0, 3]);
  const tokens = Int32Array.from([1, 2, 1]);
  const rowState = Int32Array.from([0, 0, 0, 3, 0, 0, 1, 1, 1, 0, 2, 1]);
  const outTokens = new Int32Array(B * maxNew).fill(-1), outLogps = new Float32Array(B * maxNew);
  const logits = Float32Array.from([9, 0, 0, 0, 0, 0, 0, 5, 0, 5, 0, 0]);
  const settings = { maxNewTokens: maxNew, temperature: 0, eosTokenIds: [3], padTokenId: 0 };
  sampleTokens(
    tokens,
    positions,
    rowState,
    prompts,
    outTokens,
    outLogps,
    logits,
    B,
    V,
    stride,
    settings,
  );
  assertEquals([...tokens], [2, 3, 1]);
  assertEquals([...positions], [1, 1, 4]);
  assertEquals([...outTokens], [-1, -1, 3, -1, -1, 1]);
  assertEquals([...rowState], [0, 0, 0, 3, 1, 1, 1, 1, 2, 1, 2, 1]);
  // A finished row feeds the pad token and writes nothing.
  sampleTokens(
    tokens,
    positions,
    rowState,
    prompts,
    outTokens,
    outLogps,
    logits,
    B,
    V,
    stride,
    settings,
  );
  assertEquals([tokens[1], tokens[2]], [0, 0]);
  assertEquals([...outTokens], [-1, -1, 3, -1, -1, 1]);
  assertEquals(ROW_STATE, 4);
});
