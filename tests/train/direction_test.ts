/**
 * Training moves the right way: for every loss type, a few AdamW steps of the tiny model on a
 * fixed set of 6 pairs move the quantity that loss optimises in its direction, on the CPU
 * backend and on WebGPU. The quantities are measured from the log-probs of the trained model on
 * the training batch (not from the loss's own metrics), against the initial model's (the
 * reference): a flipped gradient sign anywhere between the loss and the optimizer fails them.
 */

import assert from "node:assert/strict";
import { gpuTest } from "../helpers.ts";
import {
  type Backend,
  PREFERENCE_LOSS_TYPES,
  type PreferenceLossOptions,
  type PreferenceLossType,
  resolveKtoSpec,
} from "../../src/backend/mod.ts";
import { CpuBackend } from "../../src/cpu/backend.ts";
import { type PairRun, preference, trainKto, trainPairs } from "./tiny_pairs.ts";

/** Means over the pairs of what the losses move, from a run's reference and final log-probs. */
function moved(run: PairRun) {
  const P = run.batch.rows / 2;
  const mean = (f: (i: number) => number) =>
    Array.from({ length: P }, (_, i) => f(i)).reduce((a, b) => a + b, 0) / P;
  const n = (i: number) => run.batch.tokenCounts[i];
  const d = (i: number) => run.finalLogps[i] - run.referenceLogps[i];
  const chosen = (i: number) => d(i), rejected = (i: number) => d(P + i);
  /** Average log-prob of a completion's tokens (ORPO's and SimPO's quantities). */
  const avg = (i: number) => run.finalLogps[i] / n(i);
  const avg0 = (i: number) => run.referenceLogps[i] / n(i);
  const logOdds = (a: number) => a - Math.log(-Math.expm1(a));
  return {
    /** Mean change of the chosen and rejected log-ratios (the implicit rewards / beta). */
    chosen: mean(chosen),
    rejected: mean(rejected),
    /** The DPO margin: chosen log-ratio minus rejected log-ratio. */
    margin: mean((i) => chosen(i) - rejected(i)),
    /** The margin of per-token log-ratios (IPO as TRL, sigmoid_norm). */
    perTokenMargin: mean((i) => chosen(i) / n(i) - rejected(i) / n(P + i)),
    /** SimPO's reference-free per-token margin, its change since the start. */
    simpoMargin: mean((i) => avg(i) - avg(P + i) - (avg0(i) - avg0(P + i))),
    /** ORPO's log odds ratio of the per-token averages, its change since the start. */
    logOdds: mean((i) =>
      logOdds(avg(i)) - logOdds(avg(P + i)) - (logOdds(avg0(i)) - logOdds(avg0(P + i)))
    ),
  };
}

type Moved = ReturnType<typeof moved>;

/** A loss, the options it trains with, and what it must move (each check names its quantity). */
interface Case {
  name: string;
  options: PreferenceLossOptions;
  expect: Partial<Record<keyof Moved, "up" | "down">>;
}

const CASES: Case[] = [
  // The margin losses: DPO (eq. 7), cDPO and robust (label smoothing), SLiC's hinge, EXO,
  // DiscoPOP, BCO, the AOT pairings, and R-DPO on the sigmoid.
  ...(["sigmoid", "hinge", "exo_pair", "aot", "aot_unpaired"] as const).map((t) => ({
    name: t,
    options: { lossType: t },
    expect: { margin: "up" } as Case["expect"],
  })),
  {
    name: "cDPO (sigmoid, label smoothing 0.2)",
    options: { labelSmoothing: 0.2 },
    expect: { margin: "up" },
  },
  {
    name: "robust (label smoothing 0.2)",
    options: { lossType: "robust", labelSmoothing: 0.2 },
    expect: { margin: "up" },
  },
  {
    name: "R-DPO (sigmoid, rdpo alpha 0.05)",
    options: { rdpoAlpha: 0.05 },
    expect: { margin: "up" },
  },
  {
    name: "sigmoid with the JS divergence",
    options: { fDivergenceType: "js_divergence" },
    expect: { margin: "up" },
  },
  // DiscoPOP blends the logistic loss (z < 0) into exp(-z) (z > 0) over a width τ; for τ below
  // 0.102 the blend makes the loss rise through z = 0 (its slope there is -3/4 + 0.307/(4τ)), so
  // from policy = reference the default τ = 0.05 lowers the margin, and a wide τ raises it.
  {
    name: "discopop (tau 0.5)",
    options: { lossType: "discopop", discopopTau: 0.5 },
    expect: { margin: "up" },
  },
  {
    name: "discopop at the default tau 0.05 (the slope at z = 0 is positive)",
    options: { lossType: "discopop" },
    expect: { margin: "down" },
  },
  // IPO and sigmoid_norm pull the per-token margin towards 1/(2 beta) > 0, from 0.
  { name: "ipo", options: { lossType: "ipo" }, expect: { perTokenMargin: "up" } },
  {
    name: "ipo on sums (not length-normalised)",
    options: { lossType: "ipo", ipoLengthNormalized: false },
    expect: { margin: "up" },
  },
  { name: "sigmoid_norm", options: { lossType: "sigmoid_norm" }, expect: { perTokenMargin: "up" } },
  // The families that move each side on its own: chosen up, rejected down.
  ...(["nca_pair", "bco_pair", "sppo_hard", "apo_zero"] as const).map((t) => ({
    name: t,
    options: { lossType: t },
    expect: { chosen: "up", rejected: "down" } as Case["expect"],
  })),
  // SPPO's soft loss pulls each log-ratio towards (P̂ − 1/2)/β: win-rates 0.8 and 0.3 (the
  // tiny runs' labels) raise the chosen side and lower the rejected one.
  { name: "sppo", options: { lossType: "sppo" }, expect: { chosen: "up", rejected: "down" } },
  // APO-down lowers both sides, the rejected one further (so the margin still grows).
  {
    name: "apo_down",
    options: { lossType: "apo_down" },
    expect: { rejected: "down", margin: "up" },
  },
  // The NLL term only raises the chosen completion.
  { name: "sft", options: { lossType: "sft" }, expect: { chosen: "up" } },
  { name: "simpo", options: { lossType: "simpo", simpoGamma: 0.5 }, expect: { simpoMargin: "up" } },
  { name: "orpo", options: { lossType: "orpo" }, expect: { chosen: "up", logOdds: "up" } },
];

Deno.test("every preference loss type has a direction case", () => {
  const covered = new Set(CASES.map((c) => c.options.lossType ?? "sigmoid"));
  const missing = PREFERENCE_LOSS_TYPES.filter((t: PreferenceLossType) => !covered.has(t));
  assert.deepEqual(missing, []);
});

/**
 * Trains one case 4 AdamW steps (beta 0.5, lr 1e-3: small enough that IPO's quadratic does not
 * overshoot its target) and checks that each of its quantities moved its way.
 */
async function checkDirection(backend: Backend, c: Case): Promise<void> {
  const run = await trainPairs(backend, preference({ beta: 0.5, ...c.options }), 4, { lr: 1e-3 });
  for (const row of run.rows) {
    for (const [k, v] of Object.entries(row)) {
      assert.ok(Number.isFinite(v), `${c.name}: ${k} = ${v}`);
    }
  }
  const m = moved(run);
  for (const [quantity, way] of Object.entries(c.expect)) {
    const change = m[quantity as keyof Moved];
    // The change must be clearly non-zero: a loss whose gradient vanished does not pass.
    const ok = way === "up" ? change > 1e-3 : change < -1e-3;
    assert.ok(
      ok,
      `${c.name}: ${quantity} should go ${way}, changed by ${change} (${JSON.stringify(m)})`,
    );
  }
}

for (const c of CASES) {
  Deno.test(`${c.name} moves its quantity the right way on the CPU backend`, () =>
    checkDirection(new CpuBackend("f32"), c));
}

gpuTest("every preference loss moves its quantity the right way on WebGPU", async (gpu) => {
  for (const c of CASES) await checkDirection(gpu, c);
});

/** KTO raises the desirable examples' log-ratios and lowers the undesirable ones'. */
async function checkKto(backend: Backend, lossType: "kto" | "apo_zero_unpaired") {
  // A reference equal to the initial model: z0 starts at 0, every loss term at its steepest.
  const spec = resolveKtoSpec({ lossType, beta: 0.5 });
  const run = await trainKto(backend, spec, 4, [0, 0]);
  const change = (label: number) => {
    const idx = run.labels.flatMap((l, i) => (l === label ? [i] : []));
    return idx.reduce((s, i) => s + run.finalLogps[i] - run.initialLogps[i], 0) / idx.length;
  };
  const [desirable, undesirable] = [change(1), change(0)];
  assert.ok(desirable > 1e-3, `${lossType}: desirable log-ratio should go up, moved ${desirable}`);
  assert.ok(
    undesirable < -1e-3,
    `${lossType}: undesirable log-ratio should go down, moved ${undesirable}`,
  );
}

for (const lossType of ["kto", "apo_zero_unpaired"] as const) {
  Deno.test(`${lossType} raises desirable and lowers undesirable examples on the CPU backend`, () =>
    checkKto(new CpuBackend("f32"), lossType));
}

gpuTest("KTO and apo_zero_unpaired move the right way on WebGPU", async (gpu) => {
  for (const lossType of ["kto", "apo_zero_unpaired"] as const) await checkKto(gpu, lossType);
});
