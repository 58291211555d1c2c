// The WGSL preference-loss and KTO kernels against the CPU reference (float64 on the same
// f32-rounded inputs). f32 exp/log and 64-way partial sums: seqGrad atol 1e-6, rtol 1e-4;
// metrics (sums over up to 70 pairs) atol 1e-4, rtol 1e-4.
import type { PreferenceLossOptions } from "../../src/backend/losses.ts";
import { resolveLossSpec } from "../../src/backend/losses.ts";
import { resolveKtoSpec } from "../../src/backend/kto_loss.ts";
import * as ref from "../../src/cpu/loss.ts";
import {
  KTO_METRICS,
  type KtoLossType,
  PREFERENCE_LOSS_TYPES,
  PREFERENCE_METRICS,
} from "../../src/backend/mod.ts";
import type { GpuBackend } from "../../src/gpu/backend.ts";
import { assertClose, gpuTest, randomArray, upload } from "../helpers.ts";

/**
 * P pairs: policy log-probs in [-20, -0.5], reference within ±1.5, 1..20 tokens, win-rates in
 * [0, 1] (read by sppo only).
 */
function batch(P: number, seed: number) {
  const policy = Float32Array.from(randomArray(2 * P, seed, 1), (u) => -10.25 + 9.75 * u);
  const noise = randomArray(2 * P, seed + 1, 1.5);
  const reference = Float32Array.from(policy, (p, i) => p + noise[i]);
  const tokens = Float32Array.from(
    randomArray(2 * P, seed + 2),
    (u) => 1 + Math.floor(10 * (u + 1) * 0.95),
  );
  const winRates = Float32Array.from(randomArray(2 * P, seed + 3), (u) => (u + 1) / 2);
  return { policy, reference, tokens, winRates };
}

const INITIAL = Array.from(PREFERENCE_METRICS, (_, i) => 0.25 * i);

async function compare(gpu: GpuBackend, options: PreferenceLossOptions, P: number, seed: number) {
  const spec = resolveLossSpec({ beta: 0.3, labelSmoothing: 0.1, ...options });
  const { policy, reference, tokens, winRates } = batch(P, seed);
  const scale = 1 / P;
  const seqGrad = new Float64Array(2 * P), metrics = Float64Array.from(INITIAL);
  ref.preferenceLoss(
    spec,
    metrics,
    seqGrad,
    Float64Array.from(policy),
    Float64Array.from(reference),
    Float64Array.from(tokens),
    Float64Array.from(winRates),
    P,
    scale,
  );
  const tMetrics = upload(gpu, INITIAL), tGrad = gpu.alloc("activations", 2 * P);
  gpu.ops.preferenceLoss({
    spec,
    metrics: tMetrics,
    seqGrad: tGrad,
    policyLogps: upload(gpu, policy),
    refLogps: upload(gpu, reference),
    tokenCounts: upload(gpu, tokens),
    winRates: upload(gpu, winRates),
    P,
    scale,
  });
  const label = JSON.stringify(options);
  assertClose(await gpu.read(tGrad), seqGrad, { atol: 1e-6, rtol: 1e-4, label: `${label} grad` });
  assertClose(await gpu.read(tMetrics), metrics, { atol: 1e-4, rtol: 1e-4, label: `${label} m` });
}

gpuTest("preferenceLoss matches the CPU reference for every loss type", async (gpu) => {
  for (const [k, lossType] of PREFERENCE_LOSS_TYPES.entries()) {
    await compare(gpu, { lossType }, k % 2 ? 70 : 13, 10 + k);
  }
});

gpuTest("preferenceLoss matches the CPU reference with options and weighted lists", async (gpu) => {
  const cases: PreferenceLossOptions[] = [
    { lossType: ["sigmoid", "sft", "ipo"], lossWeights: [1, 0.5, 0.25] },
    { lossType: ["simpo", "orpo"], lossWeights: [1, 2] },
    { lossType: ["sigmoid", "nca_pair", "apo_down"], fDivergenceType: "forward_kl" },
    { lossType: ["sigmoid", "bco_pair", "sppo_hard"], fDivergenceType: "js_divergence" },
    { lossType: ["sppo", "sft"], lossWeights: [1, 0.1], fDivergenceType: "forward_kl" },
    {
      lossType: ["exo_pair", "discopop"],
      fDivergenceType: "alpha_divergence",
      fAlphaDivergenceCoef: 0.3,
      labelSmoothing: 0,
    },
    { lossType: ["sigmoid", "hinge", "robust"], rdpoAlpha: 0.05 },
    { lossType: ["ipo", "aot_unpaired"], referenceFree: true, ipoLengthNormalized: false },
  ];
  for (const [k, options] of cases.entries()) await compare(gpu, options, 37, 50 + k);
});

gpuTest("ktoLoss matches the CPU reference (kto and apo_zero_unpaired)", async (gpu) => {
  const B = 71;
  for (const lossType of ["kto", "apo_zero_unpaired"] as KtoLossType[]) {
    const spec = resolveKtoSpec({
      lossType,
      beta: 0.4,
      desirableWeight: 1.3,
      undesirableWeight: 0.8,
    });
    const policy = Float32Array.from(randomArray(B, 3, 5), (x) => x - 6);
    const policyKl = Float32Array.from(randomArray(B, 4, 5), (x) => x - 9);
    const reference = Float32Array.from(
      randomArray(2 * B, 5, 1),
      (x, i) => (i < B ? policy[i] : policyKl[i - B]) - 0.3 + x,
    );
    const labels = Float32Array.from(randomArray(B, 6), (x) => (x > -0.3 ? 1 : 0));
    const initial = Array.from(KTO_METRICS, (_, i) => 0.5 * i);
    const metrics = Float64Array.from(initial), seqGrad = new Float64Array(B);
    const f64 = (a: Float32Array) => Float64Array.from(a);
    ref.ktoLoss(
      spec,
      metrics,
      seqGrad,
      f64(policy),
      f64(policyKl),
      f64(reference),
      f64(labels),
      B,
      1 / B,
    );
    const tMetrics = upload(gpu, initial), tGrad = gpu.alloc("activations", B);
    gpu.ops.ktoLoss({
      spec,
      metrics: tMetrics,
      seqGrad: tGrad,
      policyLogps: upload(gpu, policy),
      policyKlLogps: upload(gpu, policyKl),
      refLogps: upload(gpu, reference),
      labels: upload(gpu, labels),
      B,
      scale: 1 / B,
    });
    assertClose(await gpu.read(tGrad), seqGrad, {
      atol: 1e-6,
      rtol: 1e-4,
      label: `${lossType} grad`,
    });
    assertClose(await gpu.read(tMetrics), metrics, { atol: 1e-4, rtol: 1e-4, label: lossType });
  }
});
