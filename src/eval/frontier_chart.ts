/**
 * The reward–KL frontier chart (the DPO paper's Fig. 2, left): expected ground-truth reward
 * against KL(π ‖ π_ref), one point per evaluation, coloured per run (method and β); and the same
 * evaluations' completion length and reward against steps.
 */

import type { ChartSpec } from "./charts.ts";

/** One evaluation of one run in the reward–KL frontier (the DPO paper's Fig. 2, left). */
export interface FrontierPoint {
  /** Training method, e.g. "DPO" or "Preferred-FT". */
  method: string;
  /** DPO's β, when the method has one; part of the series label. */
  beta?: number;
  /** Optimizer step at which the policy was evaluated. */
  step: number;
  /** Sequence-level KL(π ‖ π_ref) in nats, along the policy's own samples. */
  kl: number;
  /** Mean ground-truth reward of the policy's samples. */
  reward: number;
  /** Mean length of the policy's samples (completion tokens), when measured. */
  length?: number;
  /** Mean per-token entropy of the policy along its samples (nats), when measured. */
  entropy?: number;
  /** distinct-2 of the policy's samples, when measured. */
  distinct2?: number;
}

/** Series label of a frontier point: the method, with β when there is one. */
export function frontierLabel(p: FrontierPoint): string {
  return p.beta === undefined ? p.method : `${p.method} β=${p.beta}`;
}

/** Colour ramps (dark to light) for methods run at several β; the first goes to DPO's. */
const RAMPS = [
  ["#0b2a6f", "#1f5fa8", "#2a8fbd", "#3fb5b0", "#7fd0a8"],
  ["#6b1e08", "#a8400f", "#d9651b", "#f09a3e", "#f7c274"],
];
/** Distinct colours for methods with one series (Preferred-FT, SFT, PPO). */
const SINGLES = ["#e15759", "#b07aa1", "#9c755f", "#59a14f", "#f28e2b"];

/** Linear interpolation between hex colours, at t in [0, 1] along the stops. */
function rampAt(stops: string[], t: number): string {
  const x = t * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2);
  const f = x - i;
  const rgb = (h: string) => [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16));
  const [a, b] = [rgb(stops[i]), rgb(stops[i + 1])];
  return "#" +
    a.map((v, k) => Math.round(v + f * (b[k] - v)).toString(16).padStart(2, "0")).join("");
}

/**
 * Frontier colours in legend order: each method run at several β gets one ramp, ordered by β
 * (so a family reads as one hue), DPO first; methods with a single series get distinct colours.
 */
function frontierColors(points: Array<FrontierPoint & { series: string }>, order: string[]) {
  const seriesOf = new Map<string, string[]>();
  for (const label of order) {
    const method = points.find((p) => p.series === label)!.method;
    seriesOf.set(method, [...(seriesOf.get(method) ?? []), label]);
  }
  const multi = [...seriesOf.keys()].filter((m) => seriesOf.get(m)!.length > 1)
    .sort((a, b) => Number(b === "DPO") - Number(a === "DPO"));
  const color = new Map<string, string>();
  multi.forEach((m, k) => {
    const labels = seriesOf.get(m)!;
    labels.forEach((l, i) =>
      color.set(l, rampAt(RAMPS[k % RAMPS.length], i / (labels.length - 1)))
    );
  });
  let single = 0;
  for (const l of order) if (!color.has(l)) color.set(l, SINGLES[single++ % SINGLES.length]);
  return order.map((l) => color.get(l)!);
}

/** Series labels in legend order: by method, then by β ascending. */
function legendOrder(points: Array<FrontierPoint & { series: string }>): string[] {
  return [...new Map(points.map((p) => [p.series, p])).values()]
    .sort((a, b) => a.method.localeCompare(b.method) || (a.beta ?? 0) - (b.beta ?? 0))
    .map((p) => p.series);
}

/** The frontier chart's spec, or undefined when no point has finite KL and reward. */
export function frontierChart(frontier: FrontierPoint[]): ChartSpec | undefined {
  const fpoints = frontier.filter((p) => Number.isFinite(p.kl) && Number.isFinite(p.reward))
    .map((p) => ({ ...p, series: frontierLabel(p) }));
  if (fpoints.length) {
    const order = legendOrder(fpoints);
    const x = { field: "kl", type: "quantitative", title: "KL(π ‖ π_ref) per sequence (nats)" };
    const y = {
      field: "reward",
      type: "quantitative",
      title: "expected ground-truth reward",
      scale: { zero: false },
    };
    const color = {
      field: "series",
      type: "nominal",
      title: "run",
      scale: { domain: order, range: frontierColors(fpoints, order) },
      legend: { orient: "right", symbolOpacity: 1 },
    };
    return {
      id: "frontier",
      title: "Reward–KL frontier",
      caption: "One point per evaluation; lines join each run's evaluations in step order. " +
        "Higher at equal KL is better (the DPO paper's Fig. 2, left).",
      spec: {
        width: 560,
        height: 320,
        data: { values: fpoints },
        encoding: { x, y, color },
        layer: [
          {
            mark: { type: "line", opacity: 0.35, strokeWidth: 1.2 },
            encoding: { order: { field: "step", type: "quantitative" } },
          },
          {
            mark: { type: "point", filled: true, size: 55, opacity: 0.9 },
            encoding: {
              shape: {
                field: "method",
                type: "nominal",
                title: "method",
                legend: { orient: "right" },
              },
            },
          },
        ],
      },
    };
  }
  return undefined;
}

/**
 * Completion length and ground-truth reward against steps, one line per run, from the frontier's
 * evaluations; undefined when no point has a length. Length exploitation shows as length rising
 * while the reward does not.
 */
export function lengthChart(frontier: FrontierPoint[]): ChartSpec | undefined {
  const points = frontier.filter((p) => Number.isFinite(p.length) && Number.isFinite(p.reward))
    .map((p) => ({ ...p, series: frontierLabel(p) }));
  if (!points.length) return undefined;
  const order = legendOrder(points);
  const color = {
    field: "series",
    type: "nominal",
    title: "run",
    scale: { domain: order, range: frontierColors(points, order) },
    legend: { labelLimit: 240 },
  };
  const panel = (field: string, title: string) => ({
    width: 280,
    height: 220,
    data: { values: points },
    mark: { type: "line", point: { filled: true, size: 30 }, strokeWidth: 1.5 },
    encoding: {
      x: { field: "step", type: "quantitative", title: "step" },
      y: { field, type: "quantitative", title, scale: { zero: false } },
      color,
    },
  });
  return {
    id: "length",
    title: "Completion length and ground-truth reward against steps",
    caption: "The evaluations of the frontier chart, against training steps: mean completion " +
      "length of the samples (left) and their mean ground-truth reward (right).",
    spec: {
      hconcat: [
        panel("length", "completion length (tokens)"),
        panel("reward", "expected ground-truth reward"),
      ],
    },
  };
}
