/**
 * KTO on the device (src/backend/kto_loss.ts has the formulas): one workgroup reduces the
 * mismatched pairs' log-ratios to z0 in a fixed order, then each invocation takes examples
 * i, i+64, ...; the metric sums are reduced in a fixed order.
 *
 * @module
 */

import type { KtoLossSpec, Tensor } from "../../backend/mod.ts";
import { f32bits, type GpuContext } from "../context.ts";

// policy, policyKl, labels, seqGrad: (B); reference: (2B) examples then mismatched pairs;
// metrics: (8) KTO_METRICS.
export const KTO_LOSS_WGSL = /* wgsl */ `
struct Params { B: u32, lossType: u32, beta: f32, wD: f32, wU: f32, scale: f32 }
@group(0) @binding(0) var<uniform> u: Params;
@group(0) @binding(1) var<storage, read_write> metrics: array<f32>;
@group(0) @binding(2) var<storage, read_write> seqGrad: array<f32>;
@group(0) @binding(3) var<storage, read_write> policy: array<f32>;
@group(0) @binding(4) var<storage, read_write> policyKl: array<f32>;
@group(0) @binding(5) var<storage, read_write> reference: array<f32>;
@group(0) @binding(6) var<storage, read_write> labels: array<f32>;
var<workgroup> partial: array<array<f32, 8>, 64>;
var<workgroup> z0: f32;

fn sigmoid(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32) {
  let B = u.B;
  // z0: the mismatched pairs' mean log-ratio, detached, clamped at 0 (kto only).
  var kl = 0.0;
  for (var i = lid; i < B; i += 64u) { kl += policyKl[i] - reference[B + i]; }
  partial[lid][0] = kl;
  workgroupBarrier();
  if (lid == 0u) {
    var total = 0.0;
    for (var t = 0u; t < 64u; t++) { total += partial[t][0]; }
    z0 = select(0.0, max(0.0, total / f32(B)), u.lossType == 0u);
  }
  workgroupBarrier();
  let kl0 = z0;
  var sums: array<f32, 8>;
  for (var i = lid; i < B; i += 64u) {
    let logRatio = policy[i] - reference[i];
    let desirable = labels[i] != 0.0;
    let sgn = select(-1.0, 1.0, desirable);
    let w = select(u.wU, u.wD, desirable);
    let q = sigmoid(u.beta * sgn * (logRatio - kl0));
    seqGrad[i] = u.scale * (-w * u.beta * q * (1.0 - q) * sgn);
    sums[0] += w * (1.0 - q);
    let c = select(1u, 0u, desirable);
    sums[2u + c] += u.beta * logRatio;
    sums[4u + c] += policy[i];
    sums[6u + c] += 1.0;
  }
  partial[lid] = sums;
  workgroupBarrier();
  if (lid == 0u) {
    var total = 0.0;
    for (var t = 0u; t < 64u; t++) { total += partial[t][0]; }
    metrics[0] += u.scale * total;
    metrics[1] += u.scale * f32(B) * kl0;
  }
  if (lid >= 2u && lid < 8u) {
    var total = 0.0;
    for (var t = 0u; t < 64u; t++) { total += partial[t][lid]; }
    metrics[lid] += total;
  }
}`;

/** See Ops.ktoLoss. */
export function ktoLoss(
  ctx: GpuContext,
  spec: KtoLossSpec,
  metrics: Tensor,
  seqGrad: Tensor,
  policyLogps: Tensor,
  policyKlLogps: Tensor,
  refLogps: Tensor,
  labels: Tensor,
  B: number,
  scale: number,
): void {
  ctx.launch(
    "kto_loss",
    KTO_LOSS_WGSL,
    [metrics, seqGrad, policyLogps, policyKlLogps, refLogps, labels],
    [
      B,
      spec.lossType === "kto" ? 0 : 1,
      f32bits(spec.beta),
      f32bits(spec.desirableWeight),
      f32bits(spec.undesirableWeight),
      f32bits(scale),
    ],
    [1],
  );
}
