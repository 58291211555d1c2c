/**
 * CPU reference of the decode ops: one new token per row against a KV cache, and the sampling
 * step that turns a row's logits into its next token (see src/gpu/kernels/decode.ts and
 * src/gpu/kernels/sample.ts for the WGSL).
 *
 * Shapes: B rows, L cache positions per row (capacity), H query heads and Hkv key/value heads of
 * D dims, V vocabulary. positions (B) i32 holds the position of the token each row feeds now.
 *
 * Sampling follows HF `generate` with `do_sample`: logits / temperature, then top-k (keep every
 * token >= the k-th largest value, ties included, as TopKLogitsWarper), then top-p (keep the
 * smallest set of most likely tokens whose probability reaches p, at least one, as
 * TopPLogitsWarper; tokens tied at the boundary are all kept), then a draw. The draw is the
 * Gumbel-max trick, argmax of z + Gumbel noise, which has the distribution of softmax(z) over the
 * kept tokens; the noise of each token is a hash of (seed, stream, step, token), so a sequence's
 * samples depend only on the seed, its stream id and its own step, never on the batch it ran in.
 *
 * @module
 */

import { mix32, ROW_STATE, type SampleSettings } from "../backend/mod.ts";
import type { FloatArray } from "./types.ts";

/** Bias-reduced 32-bit integer hash (Chris Wellons' "lowbias32"); identical in WGSL. */
export { mix32 };

/** The per-(seed, stream, step) hash; the token's noise hashes it with the token id. */
export function rowHash(seed: number, stream: number, step: number): number {
  return mix32(mix32(mix32((seed >>> 0) ^ 0x9e3779b9) ^ (stream >>> 0)) ^ (step >>> 0));
}

/** Uniform in (0, 1) of one token: 24 random bits, centred, exact in f32. */
export function tokenUniform(hash: number, token: number): number {
  const h = mix32(mix32(hash ^ token));
  return ((h >>> 8) + 0.5) / 16777216;
}

/** Maps an f32 to a u32 whose unsigned order is the float order (the radix-select key). */
export function orderedKey(x: number): number {
  F32[0] = x;
  const bits = U32[0];
  return (bits & 0x80000000 ? ~bits : bits | 0x80000000) >>> 0;
}
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** Rotates x (rows, H, D) in place, row r at position positions[r]; cos, sin (L, D/2). */
export function ropeAt(
  x: FloatArray,
  cos: FloatArray,
  sin: FloatArray,
  positions: Int32Array,
  rows: number,
  H: number,
  D: number,
): void {
  const half = D / 2;
  for (let r = 0; r < rows; r++) {
    const table = positions[r] * half;
    for (let h = 0; h < H; h++) {
      const base = (r * H + h) * D;
      for (let i = 0; i < half; i++) {
        const c = cos[table + i], s = sin[table + i];
        const x1 = x[base + i], x2 = x[base + i + half];
        x[base + i] = x1 * c - x2 * s;
        x[base + i + half] = x2 * c + x1 * s;
      }
    }
  }
}

/** kCache, vCache (B,L,Hkv,D)[b, positions[b]] = k, v (B,Hkv,D)[b]; positions >= L are skipped. */
export function kvCacheWrite(
  kCache: FloatArray,
  vCache: FloatArray,
  k: FloatArray,
  v: FloatArray,
  positions: Int32Array,
  B: number,
  L: number,
  Hkv: number,
  D: number,
): void {
  const width = Hkv * D;
  for (let b = 0; b < B; b++) {
    const pos = positions[b];
    if (pos < 0 || pos >= L) continue;
    const dst = (b * L + pos) * width;
    kCache.set(k.subarray(b * width, (b + 1) * width), dst);
    vCache.set(v.subarray(b * width, (b + 1) * width), dst);
  }
}

/**
 * out (B,H,D) = attention of each row's one query q (B,H,D) over its cache positions
 * 0..positions[b] (GQA: head h reads kv head floor(h / (H/Hkv))), scores scaled by 1/sqrt(D),
 * as the causal forward computes its last row. scores (B,H,L) keeps the probabilities.
 */
export function decodeAttention(
  out: FloatArray,
  scores: FloatArray,
  q: FloatArray,
  kCache: FloatArray,
  vCache: FloatArray,
  positions: Int32Array,
  B: number,
  L: number,
  H: number,
  Hkv: number,
  D: number,
): void {
  const group = H / Hkv;
  const scale = 1 / Math.sqrt(D);
  const acc = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    const len = Math.min(positions[b] + 1, L);
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      const qRow = (b * H + h) * D;
      const sRow = (b * H + h) * L;
      let max = -Infinity;
      for (let s = 0; s < len; s++) {
        const kRow = ((b * L + s) * Hkv + kvh) * D;
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[qRow + d] * kCache[kRow + d];
        scores[sRow + s] = dot * scale;
        if (scores[sRow + s] > max) max = scores[sRow + s];
      }
      let sum = 0;
      for (let s = 0; s < len; s++) {
        scores[sRow + s] = Math.exp(scores[sRow + s] - max);
        sum += scores[sRow + s];
      }
      acc.fill(0);
      for (let s = 0; s < len; s++) {
        scores[sRow + s] = scores[sRow + s] / sum;
        const p = scores[sRow + s];
        const vRow = ((b * L + s) * Hkv + kvh) * D;
        for (let d = 0; d < D; d++) acc[d] += p * vCache[vRow + d];
      }
      for (let d = 0; d < D; d++) out[qRow + d] = acc[d];
    }
  }
}

/**
 * The token one row samples from its logits (V): greedy argmax (lowest id on ties) at
 * temperature 0, else the Gumbel-max draw over the top-k / top-p set. Also returns the token's
 * log-prob under the unmodified model distribution, log_softmax(logits)[token].
 */
export function sampleRow(
  logits: ArrayLike<number>,
  V: number,
  settings: SampleSettings,
  stream: number,
  step: number,
): { token: number; logp: number } {
  let max = -Infinity, argmax = 0;
  for (let i = 0; i < V; i++) if (logits[i] > max) max = logits[argmax = i];
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  const { temperature, topK = 0, topP = 1, seed = 0 } = settings;
  if (!(temperature > 0)) return { token: argmax, logp: logits[argmax] - lse };
  const z = Float32Array.from({ length: V }, (_, i) => logits[i] / temperature);
  const keys = Uint32Array.from(z, orderedKey);
  let threshold = 0;
  if (topK > 0 && topK < V) threshold = [...keys].sort((a, b) => b - a)[topK - 1];
  if (topP < 1) {
    const zMax = Math.fround(max / temperature);
    const kept = [...keys.keys()].filter((i) => keys[i] >= threshold);
    let total = 0;
    for (const i of kept) total += Math.exp(z[i] - zMax);
    // The largest key whose mass at or above it reaches p * total (all ties of it kept).
    kept.sort((a, b) => keys[b] - keys[a]);
    let mass = 0;
    for (let j = 0; j < kept.length; j++) {
      mass += Math.exp(z[kept[j]] - zMax);
      const last = j + 1 === kept.length || keys[kept[j + 1]] !== keys[kept[j]];
      if (last && mass >= topP * total) {
        threshold = keys[kept[j]];
        break;
      }
    }
  }
  const hash = rowHash(seed, stream, step);
  let best = -Infinity, token = -1;
  for (let i = 0; i < V; i++) {
    if (keys[i] < threshold) continue;
    const gumbel = -Math.log(-Math.log(tokenUniform(hash, i)));
    const value = z[i] + gumbel;
    if (value > best || token < 0) {
      best = value;
      token = i;
    }
  }
  return { token, logp: logits[token] - lse };
}

/**
 * One decode step's bookkeeping for B rows, after the logits (B,V) of the tokens at positions:
 * a row still inside its prompt feeds its next prompt token; a finished row feeds `padTokenId`;
 * any other row samples ({@link sampleRow}, stream = its stream id, step = its generated count),
 * appends the token and its log-prob to outTokens / outLogps (B,maxNew), and is finished by an
 * EOS id or by reaching maxNew tokens. Every row then advances its position by one.
 * rowState (B,4): generated, done, stream, promptLength. prompts (B,promptStride).
 */
export function sampleTokens(
  tokens: Int32Array,
  positions: Int32Array,
  rowState: Int32Array,
  prompts: Int32Array,
  outTokens: Int32Array,
  outLogps: FloatArray,
  logits: FloatArray,
  B: number,
  V: number,
  promptStride: number,
  settings: SampleSettings,
): void {
  const eos = settings.eosTokenIds ?? [];
  for (let b = 0; b < B; b++) {
    const s = b * ROW_STATE;
    const next = positions[b] + 1;
    let token: number;
    if (next < rowState[s + 3]) token = prompts[b * promptStride + next];
    else if (rowState[s + 1] !== 0) token = settings.padTokenId ?? 0;
    else {
      const generated = rowState[s];
      const row = logits.subarray(b * V, (b + 1) * V);
      const sample = sampleRow(row, V, settings, rowState[s + 2], generated);
      token = sample.token;
      outTokens[b * settings.maxNewTokens + generated] = token;
      outLogps[b * settings.maxNewTokens + generated] = sample.logp;
      rowState[s] = generated + 1;
      if (eos.includes(token) || generated + 1 >= settings.maxNewTokens) rowState[s + 1] = 1;
    }
    tokens[b] = token;
    positions[b] = next;
  }
}
