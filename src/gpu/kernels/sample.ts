/**
 * WGSL sampling step of decoding: a row's logits to its next token (temperature, top-k, top-p,
 * EOS), as `sampleTokens` in src/cpu/decode.ts; the decode kernels it follows are in decode.ts.
 *
 * Every storage binding is declared `read_write`, inputs included: wgpu (Deno) refuses a dispatch
 * that binds one arena buffer as both `read` and `read_write`, even at disjoint ranges.
 *
 * @module
 */

import type { DecodeRows, SampleSettings, Tensor } from "../../backend/mod.ts";
import { F32_LOWEST, f32bits, type GpuContext } from "../context.ts";
import { assertDistinct } from "./elementwise.ts";

/** Workgroup size of the sampling kernel (a power of two, for the tree reductions). */
const SAMPLE_WG = 32;
/** EOS ids the sampling uniforms hold. */
export const MAX_EOS_IDS = 8;

/**
 * The sampling step, one workgroup of 256 per row (see `sampleTokens` in src/cpu/decode.ts).
 * Reductions are fixed-order trees in workgroup memory. The top-k and top-p thresholds are found
 * by a 32-pass radix select on order-preserving u32 keys of z = logits / temperature: bit by bit
 * from the top, keep the largest key t with count(key >= t) >= k, then the largest t with
 * mass(key >= t) >= p * mass(kept); the kept set is every token whose key reaches the threshold.
 * logits: (B,V); tokens, positions: (B) i32; rowState: (B,4) i32; prompts: (B,promptStride) i32;
 * outTokens: (B,maxNew) i32; outLogps: (B,maxNew)
 */
export const SAMPLE_TOKENS_WGSL = `struct Params {
  B: u32, V: u32, promptStride: u32, maxNew: u32, temperature: f32, topK: u32, topP: f32,
  seed: u32, pad: i32, eosCount: u32,
  e0: i32, e1: i32, e2: i32, e3: i32, e4: i32, e5: i32, e6: i32, e7: i32,
}
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> tokens: array<i32>;
@group(0) @binding(3) var<storage, read_write> positions: array<i32>;
@group(0) @binding(4) var<storage, read_write> rowState: array<i32>;
@group(0) @binding(5) var<storage, read_write> prompts: array<i32>;
@group(0) @binding(6) var<storage, read_write> outTokens: array<i32>;
@group(0) @binding(7) var<storage, read_write> outLogps: array<f32>;
const WG: u32 = ${SAMPLE_WG}u;
var<workgroup> redF: array<f32, WG>;
var<workgroup> redI: array<u32, WG>;
var<workgroup> sampling: u32;

fn sumF(lid: u32, v: f32) -> f32 {
  redF[lid] = v;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { redF[lid] += redF[lid + stride]; }
    workgroupBarrier();
  }
  let r = redF[0];
  workgroupBarrier();
  return r;
}

fn maxF(lid: u32, v: f32) -> f32 {
  redF[lid] = v;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { redF[lid] = max(redF[lid], redF[lid + stride]); }
    workgroupBarrier();
  }
  let r = redF[0];
  workgroupBarrier();
  return r;
}

fn sumU(lid: u32, v: u32) -> u32 {
  redI[lid] = v;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { redI[lid] += redI[lid + stride]; }
    workgroupBarrier();
  }
  let r = redI[0];
  workgroupBarrier();
  return r;
}

// The index of the largest value, the lowest index among equals (-1 = none).
fn argmaxF(lid: u32, v: f32, index: u32) -> u32 {
  redF[lid] = v;
  redI[lid] = index;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) {
      let ov = redF[lid + stride];
      let oi = redI[lid + stride];
      if (ov > redF[lid] || (ov == redF[lid] && oi < redI[lid])) {
        redF[lid] = ov;
        redI[lid] = oi;
      }
    }
    workgroupBarrier();
  }
  let r = redI[0];
  workgroupBarrier();
  return r;
}

fn mix32(x0: u32) -> u32 {
  var x = x0;
  x ^= x >> 16u;
  x *= 0x7feb352du;
  x ^= x >> 15u;
  x *= 0x846ca68bu;
  x ^= x >> 16u;
  return x;
}

fn orderedKey(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn isEos(t: i32) -> bool {
  var ids = array<i32, 8>(u.e0, u.e1, u.e2, u.e3, u.e4, u.e5, u.e6, u.e7);
  for (var i = 0u; i < u.eosCount; i++) { if (ids[i] == t) { return true; } }
  return false;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x;
  let V = u.V;
  let base = row * V;
  let st = row * 4u;
  if (lid == 0u) {
    let inPrompt = positions[row] + 1 < rowState[st + 3u];
    sampling = select(1u, 0u, inPrompt || rowState[st + 1u] != 0);
  }
  // Prompt rows and finished rows skip the work; the flag is uniform across the workgroup.
  let sampleThisRow = workgroupUniformLoad(&sampling);
  var chosen = 0u;
  var logp = 0.0;
  if (sampleThisRow != 0u) {
    var localMax = ${F32_LOWEST};
    var localArg = 0xffffffffu;
    for (var i = lid; i < V; i += WG) {
      let l = logits[base + i];
      if (l > localMax || localArg == 0xffffffffu) { localMax = l; localArg = i; }
    }
    let greedy = argmaxF(lid, localMax, localArg);
    let m = logits[base + greedy];
    var localSum = 0.0;
    for (var i = lid; i < V; i += WG) { localSum += exp(logits[base + i] - m); }
    let lse = m + log(sumF(lid, localSum));
    chosen = greedy;
    if (u.temperature > 0.0) {
      let temperature = u.temperature;
      let zMax = m / temperature;
      var threshold = 0u;
      if (u.topK > 0u && u.topK < V) {
        for (var bit = 31i; bit >= 0i; bit--) {
          let cand = threshold | (1u << u32(bit));
          var count = 0u;
          for (var i = lid; i < V; i += WG) {
            count += select(0u, 1u, orderedKey(logits[base + i] / temperature) >= cand);
          }
          if (sumU(lid, count) >= u.topK) { threshold = cand; }
        }
      }
      if (u.topP < 1.0) {
        var kept = 0.0;
        for (var i = lid; i < V; i += WG) {
          let z = logits[base + i] / temperature;
          if (orderedKey(z) >= threshold) { kept += exp(z - zMax); }
        }
        let nucleusMass = u.topP * sumF(lid, kept);
        let topKFloor = threshold;
        var nucleus = 0u;
        for (var bit = 31i; bit >= 0i; bit--) {
          let cand = nucleus | (1u << u32(bit));
          var mass = 0.0;
          for (var i = lid; i < V; i += WG) {
            let z = logits[base + i] / temperature;
            let key = orderedKey(z);
            if (key >= cand && key >= topKFloor) { mass += exp(z - zMax); }
          }
          if (sumF(lid, mass) >= nucleusMass) { nucleus = cand; }
        }
        threshold = max(nucleus, topKFloor);
      }
      let hash = mix32(mix32(mix32(u.seed ^ 0x9e3779b9u) ^ u32(rowState[st + 2u])) ^
        u32(rowState[st]));
      var best = ${F32_LOWEST};
      var bestIndex = 0xffffffffu;
      for (var i = lid; i < V; i += WG) {
        let z = logits[base + i] / temperature;
        if (orderedKey(z) < threshold) { continue; }
        let uniform01 = (f32(mix32(mix32(hash ^ i)) >> 8u) + 0.5) / 16777216.0;
        let value = z - log(-log(uniform01));
        if (value > best || bestIndex == 0xffffffffu) { best = value; bestIndex = i; }
      }
      chosen = argmaxF(lid, best, bestIndex);
    }
    logp = logits[base + chosen] - lse;
  }
  if (lid != 0u) { return; }
  let next = positions[row] + 1;
  var token: i32;
  if (next < rowState[st + 3u]) {
    token = prompts[row * u.promptStride + u32(next)];
  } else if (rowState[st + 1u] != 0) {
    token = u.pad;
  } else {
    token = i32(chosen);
    let generated = u32(rowState[st]);
    outTokens[row * u.maxNew + generated] = token;
    outLogps[row * u.maxNew + generated] = logp;
    rowState[st] = i32(generated + 1u);
    if (isEos(token) || generated + 1u >= u.maxNew) { rowState[st + 1u] = 1; }
  }
  tokens[row] = token;
  positions[row] = next;
}`;

/** Records the sampling step of B rows from logits (B,V); see {@link SAMPLE_TOKENS_WGSL}. */
export function sampleTokens(
  ctx: GpuContext,
  rows: DecodeRows,
  logits: Tensor,
  B: number,
  V: number,
  settings: SampleSettings,
): void {
  const { tokens, positions, rowState, prompts, outTokens, outLogps } = rows;
  assertDistinct("sampleTokens", [
    logits,
    tokens,
    positions,
    rowState,
    prompts,
    outTokens,
    outLogps,
  ]);
  const eos = settings.eosTokenIds ?? [];
  if (eos.length > MAX_EOS_IDS) {
    throw new Error(`sampleTokens: at most ${MAX_EOS_IDS} EOS ids, got ${eos.length}`);
  }
  const eosWords = Array.from({ length: MAX_EOS_IDS }, (_, i) => eos[i] ?? -1);
  ctx.launch(
    "decode_sample_tokens",
    SAMPLE_TOKENS_WGSL,
    [logits, tokens, positions, rowState, prompts, outTokens, outLogps],
    [
      B,
      V,
      rows.promptStride,
      settings.maxNewTokens,
      f32bits(settings.temperature),
      settings.topK ?? 0,
      f32bits(settings.topP ?? 1),
      (settings.seed ?? 0) >>> 0,
      settings.padTokenId ?? 0,
      eos.length,
      ...eosWords,
    ],
    [B],
  );
}
