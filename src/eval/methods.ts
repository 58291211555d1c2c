/**
 * The method comparison of `deno task compare-methods` (issue 15, "Measured"): one run per
 * (method, seed) from the same SFT model, each evaluated on the held-out prompts, aggregated to
 * one row per method (mean and sample standard deviation over seeds), a Markdown table and a
 * reward–KL chart (vega-lite, rendered by ./charts.ts like the frontier chart).
 *
 * @module
 */

import type { ChartSpec } from "./charts.ts";

/** One (method, seed) run and its evaluation. */
export interface MethodRun {
  /** Method name, e.g. "offline DPO". */
  method: string;
  /** Training seed. */
  seed: number;
  /** Held-out mean ground-truth reward. */
  reward: number;
  /** Held-out mean sequence KL(π ‖ SFT). */
  kl: number;
  /** Mean per-token entropy of the policy along its samples (nats). */
  entropy: number;
  /** distinct-2 of the held-out samples. */
  distinct2: number;
  /** Tokens the policy sampled during training (completions). */
  sampledTokens: number;
  /** Tokens the policy trained on (prompt + completion of both sides of every pair). */
  trainedTokens: number;
  /** Pairs trained on. */
  pairs: number;
  /** Wall time of the training command (seconds). */
  trainSeconds: number;
}

/** The numeric fields of a {@link MethodRun} that a row aggregates. */
export const METHOD_FIELDS = [
  "reward",
  "kl",
  "entropy",
  "distinct2",
  "sampledTokens",
  "trainedTokens",
  "pairs",
  "trainSeconds",
] as const;

/** A field's mean and its sample standard deviation over seeds (0 for one seed). */
export interface Spread {
  mean: number;
  sd: number;
}

/** One row per method. */
export type MethodRow =
  & { method: string; seeds: number[] }
  & {
    [K in typeof METHOD_FIELDS[number]]: Spread;
  };

/** Mean and sample standard deviation (n − 1) of `xs`. */
export function spread(xs: readonly number[]): Spread {
  if (xs.length === 0) return { mean: NaN, sd: NaN };
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  if (xs.length < 2) return { mean, sd: 0 };
  const v = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (xs.length - 1);
  return { mean, sd: Math.sqrt(v) };
}

/** One row per method, in the order methods first appear in `runs`. */
export function methodRows(runs: readonly MethodRun[]): MethodRow[] {
  const by = new Map<string, MethodRun[]>();
  for (const r of runs) by.set(r.method, [...(by.get(r.method) ?? []), r]);
  return [...by].map(([method, rs]) => {
    const row = { method, seeds: rs.map((r) => r.seed) } as MethodRow;
    for (const f of METHOD_FIELDS) row[f] = spread(rs.map((r) => r[f]));
    return row;
  });
}

const pm = (s: Spread, d: number) => `${s.mean.toFixed(d)} ± ${s.sd.toFixed(d)}`;
const int = (s: Spread) => Math.round(s.mean).toLocaleString("en-US");

/** The rows as a Markdown table (reward, KL, entropy, distinct-2 as mean ± sd over seeds). */
export function methodsMarkdown(rows: readonly MethodRow[]): string {
  const head = [
    "method",
    "seeds",
    "held-out reward",
    "KL(π‖SFT)",
    "entropy/token",
    "distinct-2",
    "sampled tokens",
    "trained tokens",
    "pairs",
    "wall time (s)",
  ];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  for (const r of rows) {
    lines.push(
      `| ${
        [
          r.method,
          String(r.seeds.length),
          pm(r.reward, 3),
          pm(r.kl, 2),
          pm(r.entropy, 3),
          pm(r.distinct2, 3),
          int(r.sampledTokens),
          int(r.trainedTokens),
          int(r.pairs),
          pm(r.trainSeconds, 0),
        ].join(" | ")
      } |`,
    );
  }
  return lines.join("\n");
}

/**
 * Reward against KL: each seed's run as a small point, each method's mean as a large point with
 * ± one standard deviation bars over seeds on both axes.
 */
export function methodsChart(runs: readonly MethodRun[], sft?: { reward: number }): ChartSpec {
  const rows = methodRows(runs);
  const means = rows.map((r) => ({
    method: r.method,
    kl: r.kl.mean,
    reward: r.reward.mean,
    klLo: r.kl.mean - r.kl.sd,
    klHi: r.kl.mean + r.kl.sd,
    rewardLo: r.reward.mean - r.reward.sd,
    rewardHi: r.reward.mean + r.reward.sd,
  }));
  const order = rows.map((r) => r.method);
  const x = { field: "kl", type: "quantitative", title: "KL(π ‖ π_SFT) per sequence (nats)" };
  const y = {
    field: "reward",
    type: "quantitative",
    title: "held-out ground-truth reward",
    scale: { zero: false },
  };
  const color = {
    field: "method",
    type: "nominal",
    title: "method",
    scale: { domain: order, scheme: "tableau10" },
    legend: { orient: "right", symbolOpacity: 1, labelLimit: 240 },
  };
  const layer: Record<string, unknown>[] = [
    {
      data: { values: runs.map((r) => ({ method: r.method, kl: r.kl, reward: r.reward })) },
      mark: { type: "point", filled: true, size: 25, opacity: 0.45 },
      encoding: { x, y, color },
    },
    {
      data: { values: means },
      mark: { type: "rule", strokeWidth: 1.5, opacity: 0.8 },
      encoding: { x: { ...x, field: "klLo" }, x2: { field: "klHi" }, y, color },
    },
    {
      data: { values: means },
      mark: { type: "rule", strokeWidth: 1.5, opacity: 0.8 },
      encoding: { x, y: { ...y, field: "rewardLo" }, y2: { field: "rewardHi" }, color },
    },
    {
      data: { values: means },
      mark: { type: "point", filled: true, size: 110, opacity: 1, shape: "diamond" },
      encoding: { x, y, color },
    },
  ];
  if (sft) {
    layer.push({
      data: { values: [{ reward: sft.reward, label: "SFT" }] },
      mark: { type: "rule", strokeDash: [4, 3], color: "#888" },
      encoding: { y: { field: "reward", type: "quantitative" } },
    });
  }
  return {
    id: "methods",
    title: "Reward–KL of the training methods",
    caption: "Small points: one run (seed) each; diamonds with bars: the mean over seeds ± one " +
      "standard deviation; dashed line: the SFT model. Higher at equal KL is better.",
    spec: { width: 520, height: 320, layer },
  };
}
