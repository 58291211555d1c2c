/**
 * Objectives on per-sequence log-probs, on the device, so that a training step needs no
 * readback: the weighted sum (SFT) and the preference losses (src/train/losses.ts has the
 * formulas and the references). One workgroup; each invocation takes pairs i, i+64, ...; the
 * metric sums are reduced in a fixed order.
 *
 * @module
 */

import type { PreferenceLossType, Tensor } from "../../backend.ts";
import { f32bits, type GpuContext } from "../context.ts";

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

// policy, reference, seqGrad: (2P) chosen then rejected; metrics: (7) PREFERENCE_METRICS
export const PREFERENCE_LOSS_WGSL = /* wgsl */ `
struct Params { P: u32, lossType: u32, beta: f32, eps: f32, scale: f32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> metrics: array<f32>;
@group(0) @binding(2) var<storage, read_write> seqGrad: array<f32>;
@group(0) @binding(3) var<storage, read_write> policy: array<f32>;
@group(0) @binding(4) var<storage, read_write> reference: array<f32>;
var<workgroup> partial: array<array<f32, 7>, 64>;

fn logSigmoid(x: f32) -> f32 { return min(x, 0.0) - log(1.0 + exp(-abs(x))); }
fn sigmoid(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32) {
  var sums: array<f32, 7>;
  for (var i = lid; i < u.P; i += 64u) {
    let chosenLogRatio = policy[i] - reference[i];
    let rejectedLogRatio = policy[u.P + i] - reference[u.P + i];
    let logits = chosenLogRatio - rejectedLogRatio;
    let z = u.beta * logits;
    var loss = 0.0;
    var dLogits = 0.0;
    switch u.lossType {
      case 0u: { // sigmoid (DPO / cDPO)
        loss = -(1.0 - u.eps) * logSigmoid(z) - u.eps * logSigmoid(-z);
        dLogits = u.beta * (-(1.0 - u.eps) * sigmoid(-z) + u.eps * sigmoid(z));
      }
      case 1u: { // robust
        loss = ((1.0 - u.eps) * -logSigmoid(z) + u.eps * logSigmoid(-z)) / (1.0 - 2.0 * u.eps);
        dLogits = u.beta * (-(1.0 - u.eps) * sigmoid(-z) - u.eps * sigmoid(z)) / (1.0 - 2.0 * u.eps);
      }
      case 2u: { // hinge
        if (z < 1.0) { loss = 1.0 - z; dLogits = -u.beta; }
      }
      default: { // ipo
        let diff = logits - 1.0 / (2.0 * u.beta);
        loss = diff * diff;
        dLogits = 2.0 * diff;
      }
    }
    seqGrad[i] = u.scale * dLogits;
    seqGrad[u.P + i] = -u.scale * dLogits;
    let chosenReward = u.beta * chosenLogRatio;
    let rejectedReward = u.beta * rejectedLogRatio;
    sums[0] += loss;
    sums[1] += chosenReward;
    sums[2] += rejectedReward;
    sums[3] += select(0.0, 1.0, chosenReward > rejectedReward);
    sums[4] += chosenReward - rejectedReward;
    sums[5] += policy[i];
    sums[6] += policy[u.P + i];
  }
  partial[lid] = sums;
  workgroupBarrier();
  if (lid < 7u) {
    var total = 0.0;
    for (var t = 0u; t < 64u; t++) { total += partial[t][lid]; }
    metrics[lid] += u.scale * total;
  }
}`;

const LOSS_CODES: Record<PreferenceLossType, number> = { sigmoid: 0, robust: 1, hinge: 2, ipo: 3 };

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
  lossType: PreferenceLossType,
  metrics: Tensor,
  seqGrad: Tensor,
  policyLogps: Tensor,
  refLogps: Tensor,
  P: number,
  beta: number,
  labelSmoothing: number,
  scale: number,
): void {
  ctx.launch("preference_loss", PREFERENCE_LOSS_WGSL, [metrics, seqGrad, policyLogps, refLogps], [
    P,
    LOSS_CODES[lossType],
    f32bits(beta),
    f32bits(labelSmoothing),
    f32bits(scale),
  ], [1]);
}
