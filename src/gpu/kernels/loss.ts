/**
 * Objectives on per-sequence log-probs, on the device, so that a training step needs no
 * readback: the weighted sum (SFT), the preference losses and KTO. src/backend/pair_terms.ts and
 * src/backend/kto_loss.ts have the formulas and the references; `term` below mirrors `pairTerm`
 * line for line. One workgroup; each invocation takes pairs i, i+64, ...; the metric sums are
 * reduced in a fixed order.
 *
 * @module
 */

import type { PreferenceLossSpec, Tensor } from "../../backend/mod.ts";
import { PREFERENCE_LOSS_TYPES, PREFERENCE_METRICS } from "../../backend/mod.ts";
import { usesPerTokenRewards } from "../../backend/pair_terms.ts";
import { f32bits, type GpuContext } from "../context.ts";

export { KTO_LOSS_WGSL, ktoLoss } from "./kto_loss.ts";

// seqLogps, weights, seqGrad: (S); loss: (1)
export const WEIGHTED_SUM_WGSL = /* wgsl */ `
struct Params { S: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> loss: array<f32>;
@group(0) @binding(2) var<storage, read_write> seqGrad: array<f32>;
@group(0) @binding(3) var<storage, read_write> seqLogps: array<f32>;
@group(0) @binding(4) var<storage, read_write> weights: array<f32>;
var<workgroup> partial: array<f32, 64>;
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32) {
  var sum = 0.0;
  for (var s = lid; s < u.S; s += 64u) {
    sum += weights[s] * seqLogps[s];
    seqGrad[s] = weights[s];
  }
  partial[lid] = sum;
  workgroupBarrier();
  if (lid == 0u) {
    var total = 0.0;
    for (var i = 0u; i < 64u; i++) { total += partial[i]; }
    if (u.accumulate != 0u) { total += loss[0]; }
    loss[0] = total;
  }
}`;

// policy, reference, tokens, winRates, seqGrad: (2P) chosen then rejected; metrics: (10)
// PREFERENCE_METRICS.
// Loss codes are indices in PREFERENCE_LOSS_TYPES; t0..t7 / w0..w7 the listed types and weights.
export const PREFERENCE_LOSS_WGSL = /* wgsl */ `
struct Params {
  P: u32, nTypes: u32, fdiv: u32, flags: u32,
  beta: f32, eps: f32, scale: f32, fAlpha: f32,
  rdpo: f32, gamma: f32, tau: f32, aotMode: u32,
  t0: u32, t1: u32, t2: u32, t3: u32, t4: u32, t5: u32, t6: u32, t7: u32,
  w0: f32, w1: f32, w2: f32, w3: f32, w4: f32, w5: f32, w6: f32, w7: f32,
}
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> metrics: array<f32>;
@group(0) @binding(2) var<storage, read_write> seqGrad: array<f32>;
@group(0) @binding(3) var<storage, read_write> policy: array<f32>;
@group(0) @binding(4) var<storage, read_write> reference: array<f32>;
@group(0) @binding(5) var<storage, read_write> tokens: array<f32>;
@group(0) @binding(6) var<storage, read_write> winRates: array<f32>;
var<workgroup> partial: array<array<f32, 10>, 64>;
// AOT: the batch sorted in one workgroup (P <= 512).
var<workgroup> sortedA: array<f32, 512>;
var<workgroup> sortedB: array<f32, 512>;
var<workgroup> rankA: array<u32, 512>;
var<workgroup> rankB: array<u32, 512>;

struct Pair {
  pc: f32, pr: f32, rc: f32, rr: f32, nw: f32, nl: f32, dC: f32, dR: f32, ww: f32, wl: f32,
}

fn logSigmoid(x: f32) -> f32 { return min(x, 0.0) - log(1.0 + exp(-abs(x))); }
fn sigmoid(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}
fn expm1(x: f32) -> f32 {
  if (abs(x) < 1e-3) { return x * (1.0 + x * (0.5 + x / 6.0)); }
  return exp(x) - 1.0;
}
fn refAt(k: u32) -> f32 { return select(reference[k], 0.0, (u.flags & 1u) != 0u); }

// f(s), f'(s) of the f-divergence.
fn fScore(s: f32) -> vec2<f32> {
  switch u.fdiv {
    case 1u: { return vec2<f32>(-exp(-s), exp(-s)); }
    case 2u: { return vec2<f32>(logSigmoid(s), sigmoid(-s)); }
    case 3u: {
      if (abs(u.fAlpha - 1.0) < 1e-6) { return vec2<f32>(s, 1.0); }
      let t = (u.fAlpha - 1.0) * s;
      let e = exp(min(t, 80.0));
      return vec2<f32>(e / (u.fAlpha - 1.0), select(e, 0.0, t > 80.0));
    }
    default: { return vec2<f32>(s, 1.0); }
  }
}

// A margin loss and its derivative: robust, hinge, exo_pair, discopop, else sigmoid.
fn marginLoss(t: u32, z: f32) -> vec2<f32> {
  let eps = u.eps;
  switch t {
    case 1u: {
      return vec2<f32>((-(1.0 - eps) * logSigmoid(z) + eps * logSigmoid(-z)) / (1.0 - 2.0 * eps),
        (-(1.0 - eps) * sigmoid(-z) - eps * sigmoid(z)) / (1.0 - 2.0 * eps));
    }
    case 2u: {
      if (z < 1.0) { return vec2<f32>(1.0 - z, -1.0); }
      return vec2<f32>(0.0, 0.0);
    }
    case 4u: {
      let e = select(eps, 1e-3, eps == 0.0);
      let q = sigmoid(z);
      let a = log(1.0 - e);
      let b = log(e);
      return vec2<f32>(q * (logSigmoid(z) - a) + (1.0 - q) * (logSigmoid(-z) - b),
        q * (1.0 - q) * (z - a + b));
    }
    case 12u: {
      let m = sigmoid(z / u.tau);
      let logistic = -logSigmoid(z);
      let expo = exp(-z);
      return vec2<f32>(logistic * (1.0 - m) + expo * m,
        -sigmoid(-z) * (1.0 - m) - expo * m + (expo - logistic) * m * (1.0 - m) / u.tau);
    }
    default: {
      return vec2<f32>(-(1.0 - eps) * logSigmoid(z) - eps * logSigmoid(-z),
        -(1.0 - eps) * sigmoid(-z) + eps * sigmoid(z));
    }
  }
}

// ORPO: (loss, dChosen, dRejected, logOdds).
fn orpo(x: Pair) -> vec4<f32> {
  let aw = x.pc / x.nw;
  let al = x.pr / x.nl;
  let logOdds = (aw - al) - (log(-expm1(aw)) - log(-expm1(al)));
  let g = u.beta * sigmoid(-logOdds);
  return vec4<f32>(-aw - u.beta * logSigmoid(logOdds), (-1.0 - g / -expm1(aw)) / x.nw,
    (g / -expm1(al)) / x.nl, logOdds);
}

// One loss term: (loss, dChosen, dRejected).
fn term(t: u32, x: Pair) -> vec3<f32> {
  let beta = u.beta;
  let crl = x.pc - x.rc;
  let rrl = x.pr - x.rr;
  let fw = fScore(crl);
  let fl = fScore(rrl);
  let delta = fw.x - fl.x;
  switch t {
    case 0u, 1u, 2u, 4u, 12u: {
      let z = beta * delta + u.rdpo * (x.nw - x.nl);
      let m = marginLoss(t, z);
      return vec3<f32>(m.x, m.y * beta * fw.y, -m.y * beta * fl.y);
    }
    case 3u, 13u: {
      let norm = t == 13u || (u.flags & 2u) != 0u;
      var v = delta;
      var dw = fw.y;
      var dl = -fl.y;
      if (norm) { v = fw.x / x.nw - fl.x / x.nl; dw = fw.y / x.nw; dl = -fl.y / x.nl; }
      if (t == 3u) {
        let d = v - 1.0 / (2.0 * beta);
        return vec3<f32>(d * d, 2.0 * d * dw, 2.0 * d * dl);
      }
      let g = -beta * sigmoid(-beta * v);
      return vec3<f32>(-logSigmoid(beta * v), g * dw, g * dl);
    }
    case 5u: {
      let a = beta * fw.x;
      let b = beta * fl.x;
      return vec3<f32>(-logSigmoid(a) - 0.5 * logSigmoid(-a) - 0.5 * logSigmoid(-b),
        beta * fw.y * (-sigmoid(-a) + 0.5 * sigmoid(a)), beta * fl.y * 0.5 * sigmoid(b));
    }
    case 6u: {
      let a = beta * fw.x;
      let b = beta * fl.x;
      return vec3<f32>(-logSigmoid(a) - logSigmoid(-b), -beta * fw.y * sigmoid(-a),
        beta * fl.y * sigmoid(b));
    }
    case 7u: {
      let a = fw.x - 0.5 / beta;
      let b = fl.x + 0.5 / beta;
      return vec3<f32>(a * a + b * b, 2.0 * a * fw.y, 2.0 * b * fl.y);
    }
    case 8u, 9u: {
      let mc = marginLoss(0u, beta * x.dC);
      let mr = marginLoss(0u, beta * x.dR);
      return vec3<f32>(mc.x, beta * mc.y, -beta * mr.y);
    }
    case 10u: {
      let qc = sigmoid(beta * crl);
      let qr = sigmoid(beta * rrl);
      return vec3<f32>(1.0 - qc + qr, -beta * qc * (1.0 - qc), beta * qr * (1.0 - qr));
    }
    case 11u: {
      let qc = sigmoid(beta * crl);
      let qd = sigmoid(beta * delta);
      return vec3<f32>(qc + 1.0 - qd, beta * qc * (1.0 - qc) - beta * qd * (1.0 - qd) * fw.y,
        beta * qd * (1.0 - qd) * fl.y);
    }
    case 14u: { return vec3<f32>(-x.pc / x.nw, -1.0 / x.nw, 0.0); }
    case 15u: {
      let v = x.pc / x.nw - x.pr / x.nl;
      let m = marginLoss(0u, beta * v - u.gamma);
      return vec3<f32>(m.x, m.y * beta / x.nw, -m.y * beta / x.nl);
    }
    case 17u: {
      let a = fw.x - (x.ww - 0.5) / beta;
      let b = fl.x - (x.wl - 0.5) / beta;
      return vec3<f32>(0.5 * (a * a + b * b), a * fw.y, b * fl.y);
    }
    default: { return orpo(x).xyz; }
  }
}

// AOT's sorted quantities: aot (1) sorts policy and reference margins, aot_unpaired (2) the
// chosen and rejected log-ratios.
fn aotA(i: u32) -> f32 {
  if (u.aotMode == 1u) { return policy[i] - policy[u.P + i]; }
  return policy[i] - refAt(i);
}
fn aotB(i: u32) -> f32 {
  if (u.aotMode == 1u) { return refAt(i) - refAt(u.P + i); }
  return policy[u.P + i] - refAt(u.P + i);
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32) {
  let P = u.P;
  if (u.aotMode != 0u) {
    for (var i = lid; i < P; i += 64u) {
      let a = aotA(i);
      let b = aotB(i);
      var ra = 0u;
      var rb = 0u;
      for (var j = 0u; j < P; j++) {
        let aj = aotA(j);
        let bj = aotB(j);
        if (aj < a || (aj == a && j < i)) { ra++; }
        if (bj < b || (bj == b && j < i)) { rb++; }
      }
      rankA[i] = ra;
      rankB[i] = rb;
      sortedA[ra] = a;
      sortedB[rb] = b;
    }
    workgroupBarrier();
  }
  var types = array<u32, 8>(u.t0, u.t1, u.t2, u.t3, u.t4, u.t5, u.t6, u.t7);
  var weights = array<f32, 8>(u.w0, u.w1, u.w2, u.w3, u.w4, u.w5, u.w6, u.w7);
  var sums: array<f32, 10>;
  for (var i = lid; i < P; i += 64u) {
    var x = Pair(policy[i], policy[P + i], refAt(i), refAt(P + i), max(tokens[i], 1.0),
      max(tokens[P + i], 1.0), 0.0, 0.0, winRates[i], winRates[P + i]);
    if (u.aotMode != 0u) {
      x.dC = aotA(i) - sortedB[rankA[i]];
      x.dR = select(sortedA[rankB[i]] - aotB(i), x.dC, u.aotMode == 1u);
    }
    var loss = 0.0;
    var dChosen = 0.0;
    var dRejected = 0.0;
    for (var k = 0u; k < u.nTypes; k++) {
      let r = term(types[k], x);
      loss += weights[k] * r.x;
      dChosen += weights[k] * r.y;
      dRejected += weights[k] * r.z;
    }
    seqGrad[i] = u.scale * dChosen;
    seqGrad[P + i] = u.scale * dRejected;
    var chosenReward = u.beta * (x.pc - x.rc);
    var rejectedReward = u.beta * (x.pr - x.rr);
    if ((u.flags & 4u) != 0u) {
      chosenReward = u.beta * x.pc / x.nw;
      rejectedReward = u.beta * x.pr / x.nl;
    }
    let o = orpo(x);
    sums[0] += loss;
    sums[1] += chosenReward;
    sums[2] += rejectedReward;
    sums[3] += select(0.0, 1.0, chosenReward > rejectedReward);
    sums[4] += chosenReward - rejectedReward;
    sums[5] += x.pc;
    sums[6] += x.pr;
    sums[7] += -x.pc / x.nw;
    sums[8] += logSigmoid(o.w);
    sums[9] += o.w;
  }
  partial[lid] = sums;
  workgroupBarrier();
  if (lid < 10u) {
    var total = 0.0;
    for (var t = 0u; t < 64u; t++) { total += partial[t][lid]; }
    metrics[lid] += u.scale * total;
  }
}`;

const FDIV_CODES = { reverse_kl: 0, forward_kl: 1, js_divergence: 2, alpha_divergence: 3 };

/** See Ops.weightedSum. */
export function weightedSum(
  ctx: GpuContext,
  loss: Tensor,
  seqGrad: Tensor,
  seqLogps: Tensor,
  weights: Tensor,
  S: number,
  accumulate: boolean,
): void {
  ctx.launch("weighted_sum", WEIGHTED_SUM_WGSL, [loss, seqGrad, seqLogps, weights], [
    S,
    accumulate ? 1 : 0,
  ], [1]);
}

/** See Ops.preferenceLoss. */
export function preferenceLoss(
  ctx: GpuContext,
  spec: PreferenceLossSpec,
  metrics: Tensor,
  seqGrad: Tensor,
  policyLogps: Tensor,
  refLogps: Tensor,
  tokenCounts: Tensor,
  winRates: Tensor,
  P: number,
  scale: number,
): void {
  const types = spec.lossTypes.map((t) => PREFERENCE_LOSS_TYPES.indexOf(t));
  if (types.length < 1 || types.length > 8 || types.some((c) => c < 0)) {
    throw new RangeError(`preferenceLoss: 1 to 8 known loss types, got ${spec.lossTypes}`);
  }
  const aotMode = spec.lossTypes.includes("aot")
    ? 1
    : spec.lossTypes.includes("aot_unpaired")
    ? 2
    : 0;
  if (aotMode && P > 512) {
    throw new RangeError(`preferenceLoss: aot sorts at most 512 pairs per micro-batch, got ${P}`);
  }
  if (metrics.size < PREFERENCE_METRICS.length) {
    throw new RangeError(`preferenceLoss: metrics needs ${PREFERENCE_METRICS.length} slots`);
  }
  const flags = (spec.referenceFree ? 1 : 0) | (spec.ipoLengthNormalized ? 2 : 0) |
    (usesPerTokenRewards(spec) ? 4 : 0);
  const pad = (xs: number[]) => [...xs, ...new Array(8 - xs.length).fill(0)];
  ctx.launch(
    "preference_loss",
    PREFERENCE_LOSS_WGSL,
    [metrics, seqGrad, policyLogps, refLogps, tokenCounts, winRates],
    [
      P,
      types.length,
      FDIV_CODES[spec.fDivergenceType],
      flags,
      f32bits(spec.beta),
      f32bits(spec.labelSmoothing),
      f32bits(scale),
      f32bits(spec.fAlphaDivergenceCoef),
      f32bits(spec.rdpoAlpha),
      f32bits(spec.simpoGamma),
      f32bits(spec.discopopTau),
      aotMode,
      ...pad(types),
      ...pad(spec.lossWeights.map(f32bits)),
    ],
    [1],
  );
}
