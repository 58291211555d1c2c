/**
 * The run report's charts: vega-lite specs built from a run's metrics rows (TRL's names), compiled
 * and rendered to static SVG strings by vega's headless string renderer (no DOM, no canvas), so
 * they can be inlined in an HTML file that needs no script and no network to view.
 *
 * Edge-safe: nothing here touches `Deno.*` or `node:*`; vega is loaded lazily on the first render so
 * that importing the library does not pay for it.
 */

import type { TopLevelSpec } from "vega-lite";
import { frontierChart, type FrontierPoint, lengthChart } from "./frontier_chart.ts";

export type { FrontierPoint } from "./frontier_chart.ts";

/** One row of a metrics.jsonl: `step`, `epoch`, TRL's metric names, `eval_`-prefixed eval rows. */
export type MetricRow = Record<string, number | string>;

/** A chart before rendering: its `data-chart` id, title, optional caption and vega-lite spec. */
export interface ChartSpec {
  id: string;
  title: string;
  caption?: string;
  spec: Record<string, unknown>;
}

/** A chart ready to inline: its `data-chart` id, title, optional caption and SVG markup. */
export interface RenderedChart {
  id: string;
  title: string;
  caption?: string;
  svg: string;
}

/** A point of a line chart in long form: one value of one quantity at one step of one split. */
interface SeriesPoint {
  step: number;
  value: number;
  quantity: string;
  split: "train" | "eval";
}

/** A quantity to plot: its metric name (without `eval_`), legend label and colour. */
interface Quantity {
  key: string;
  label: string;
  color: string;
}

const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";
const TABLEAU10 = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
];

/** Shared look: quiet axes, light grid, no frame, legend below. */
const CONFIG = {
  background: "white",
  font: FONT,
  padding: 8,
  view: { stroke: null },
  axis: {
    labelColor: "#555",
    titleColor: "#333",
    titleFontWeight: 500,
    titleFontSize: 12,
    labelFontSize: 11,
    gridColor: "#ececec",
    domainColor: "#aaa",
    tickColor: "#aaa",
  },
  legend: { orient: "bottom", labelFontSize: 11, titleFontSize: 11, labelColor: "#333" },
  title: { fontSize: 13, fontWeight: 600, color: "#222", anchor: "start" },
  range: { category: TABLEAU10 },
  line: { strokeWidth: 1.8 },
};

/** Finite numeric value of a field, or undefined (strings, NaN and missing fields are skipped). */
function num(row: MetricRow, key: string): number | undefined {
  const v = row[key];
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/** Long-form points of the given quantities, train from `key`, eval from `eval_key`. */
function collect(rows: MetricRow[], quantities: Quantity[]): SeriesPoint[] {
  const out: SeriesPoint[] = [];
  for (const row of rows) {
    const step = num(row, "step");
    if (step === undefined) continue;
    for (const q of quantities) {
      for (const split of ["train", "eval"] as const) {
        const value = num(row, split === "eval" ? `eval_${q.key}` : q.key);
        if (value !== undefined) out.push({ step, value, quantity: q.label, split });
      }
    }
  }
  return out;
}

/**
 * A line panel of quantities against step: colour per quantity, train solid, eval dashed with
 * points (eval rows are sparse). Extra layers (reference rules) are drawn underneath.
 */
function linePanel(
  points: SeriesPoint[],
  quantities: Quantity[],
  opts: {
    title?: string;
    yTitle: string;
    width: number;
    height?: number;
    yDomain?: number[];
    yFormat?: string;
  },
  under: Record<string, unknown>[] = [],
): Record<string, unknown> {
  const present = quantities.filter((q) => points.some((p) => p.quantity === q.label));
  const splits = (["train", "eval"] as const).filter((s) => points.some((p) => p.split === s));
  const x = { field: "step", type: "quantitative", title: "step" };
  const y = {
    field: "value",
    type: "quantitative",
    title: opts.yTitle,
    ...(opts.yFormat ? { axis: { format: opts.yFormat } } : {}),
    scale: opts.yDomain ? { domain: opts.yDomain } : { zero: false },
  };
  const color = {
    field: "quantity",
    type: "nominal",
    scale: { domain: present.map((q) => q.label), range: present.map((q) => q.color) },
    // A single quantity needs no colour legend: the panel's title names it.
    legend: present.length > 1 ? { title: null } : null,
  };
  const strokeDash = {
    field: "split",
    type: "nominal",
    scale: { domain: splits, range: splits.map((s) => s === "train" ? [1, 0] : [5, 3]) },
    legend: splits.length > 1 ? { title: null } : null,
  };
  return {
    ...(opts.title ? { title: opts.title } : {}),
    width: opts.width,
    height: opts.height ?? 220,
    data: { values: points },
    layer: [
      ...under,
      { mark: { type: "line" }, encoding: { x, y, color, strokeDash } },
      {
        transform: [{ filter: "datum.split === 'eval'" }],
        mark: { type: "point", filled: true, size: 28, opacity: 1 },
        encoding: { x, y, color },
      },
    ],
  };
}

/** Mean of the train values of one quantity over the first or last `n` logged steps. */
function edgeMean(points: SeriesPoint[], label: string, which: "first" | "last", n = 3): number {
  const train = points.filter((p) => p.split === "train" && p.quantity === label)
    .sort((a, b) => a.step - b.step);
  const part = which === "first" ? train.slice(0, n) : train.slice(-n);
  return part.reduce((s, p) => s + p.value, 0) / part.length;
}

/** Formats a number for captions and tables: 4 significant digits, no exponent for usual sizes. */
export function formatNumber(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return String(Number(v.toPrecision(4)));
}

/** What the training charts mark besides their curves. */
export interface ChartMarks {
  /** Steps that trained on a partial batch: a red dashed vertical line on every training panel. */
  partialSteps?: number[];
  /** The caption sentence that explains those lines. */
  partialCaption?: string;
}

/** Vertical rules at the given steps, drawn under a panel's curves. */
function stepRules(steps: number[]): Record<string, unknown>[] {
  if (!steps.length) return [];
  return [{
    data: { values: steps.map((step) => ({ step })) },
    mark: { type: "rule", color: "#e15759", opacity: 0.7, strokeDash: [4, 3] },
    encoding: { x: { field: "step", type: "quantitative" } },
  }];
}

/** A caption and the partial-batch sentence, either of which may be absent. */
function withNote(caption: string | undefined, note: string | undefined): string | undefined {
  return [caption, note].filter(Boolean).join(" ") || undefined;
}

/**
 * The vega-lite specs of the report, in display order; charts without data are left out.
 * `marks.partialSteps` draws a red dashed line at each step that trained on a partial batch.
 */
export function chartSpecs(
  metrics: MetricRow[],
  frontier: FrontierPoint[] = [],
  marks: ChartMarks = {},
): ChartSpec[] {
  const charts: ChartSpec[] = [];
  const rules = stepRules(marks.partialSteps ?? []);
  const note = rules.length ? marks.partialCaption : undefined;

  const lossQ = [{ key: "loss", label: "loss", color: "#4e79a7" }];
  const loss = collect(metrics, lossQ);
  if (loss.length) {
    charts.push({
      id: "loss",
      title: "Loss",
      caption: note,
      spec: linePanel(loss, lossQ, { yTitle: "preference loss", width: 620 }, rules),
    });
  }

  const marginQ = [{ key: "rewards/margins", label: "margin", color: "#59a14f" }];
  const accQ = [{ key: "rewards/accuracies", label: "accuracy", color: "#b07aa1" }];
  const margins = collect(metrics, marginQ);
  const accs = collect(metrics, accQ);
  const rewardPanels = [
    margins.length &&
    linePanel(margins, marginQ, {
      title: "reward margin",
      yTitle: "chosen − rejected reward",
      width: 290,
    }, rules),
    accs.length &&
    linePanel(accs, accQ, {
      title: "reward accuracy",
      yTitle: "pairs ranked right",
      width: 290,
      yDomain: [0, 1],
    }, [{
      // Chance level: an implicit reward that has learned nothing orders half the pairs right.
      data: { values: [{ y: 0.5 }] },
      mark: { type: "rule", color: "#bbb", strokeDash: [2, 2] },
      encoding: { y: { field: "y", type: "quantitative" } },
    }, ...rules]),
  ].filter((p): p is Record<string, unknown> => Boolean(p));
  if (rewardPanels.length) {
    charts.push({
      id: "rewards",
      title: "Implicit reward: margins and accuracies",
      caption: note,
      spec: rewardPanels.length === 1
        ? rewardPanels[0]
        : { hconcat: rewardPanels, resolve: { scale: { color: "independent" } } },
    });
  }

  const logpQ = [
    { key: "logps/chosen", label: "chosen", color: "#2e8b57" },
    { key: "logps/rejected", label: "rejected", color: "#d1495b" },
  ];
  const logps = collect(metrics, logpQ);
  if (logps.length) {
    const under: Record<string, unknown>[] = [...rules];
    let caption: string | undefined;
    if (logps.some((p) => p.split === "train" && p.quantity === "chosen")) {
      const start = edgeMean(logps, "chosen", "first");
      const end = edgeMean(logps, "chosen", "last");
      // The starting level of the chosen log-prob, so that a fall below it is plain to see.
      under.push({
        data: { values: [{ y: start }] },
        mark: { type: "rule", color: "#2e8b57", opacity: 0.45, strokeDash: [2, 3] },
        encoding: { y: { field: "y", type: "quantitative" } },
      });
      caption = end < start
        ? `The chosen log-prob fell from ${formatNumber(start)} to ${formatNumber(end)} nats ` +
          `(dotted line: its starting level): the margin grows partly by pushing the chosen ` +
          `completions down too, a known DPO failure mode.`
        : `The chosen log-prob went from ${formatNumber(start)} to ${formatNumber(end)} nats ` +
          `(dotted line: its starting level).`;
    }
    charts.push({
      id: "logps",
      title: "Log-probabilities of chosen and rejected completions",
      caption: withNote(caption, note),
      spec: linePanel(logps, logpQ, { yTitle: "sequence log-prob (nats)", width: 620 }, under),
    });
  }

  const gradQ = [{ key: "grad_norm", label: "grad norm", color: "#9c755f" }];
  const lrQ = [{ key: "learning_rate", label: "learning rate", color: "#76b7b2" }];
  const grads = collect(metrics, gradQ);
  const lrs = collect(metrics, lrQ);
  const optPanels = [
    grads.length &&
    linePanel(grads, gradQ, {
      title: "gradient norm",
      yTitle: "‖g‖",
      width: 290,
    }, rules),
    lrs.length && linePanel(lrs, lrQ, {
      title: "learning rate",
      yTitle: "lr",
      width: 290,
      yFormat: "~e",
    }, rules),
  ].filter((p): p is Record<string, unknown> => Boolean(p));
  if (optPanels.length) {
    charts.push({
      id: "optimizer",
      title: "Optimizer",
      caption: note,
      spec: optPanels.length === 1
        ? optPanels[0]
        : { hconcat: optPanels, resolve: { scale: { color: "independent" } } },
    });
  }

  const f = frontierChart(frontier);
  if (f) charts.push(f);
  const l = lengthChart(frontier);
  if (l) charts.push(l);
  return charts;
}

let vegaModules: Promise<[typeof import("vega"), typeof import("vega-lite")]> | undefined;

/**
 * Compiles a vega-lite spec and renders it to an SVG string headless. Element ids (clip paths,
 * gradients) are prefixed with `idPrefix`, since several SVGs share one HTML document's id space.
 */
export async function renderSvg(spec: Record<string, unknown>, idPrefix: string): Promise<string> {
  vegaModules ??= Promise.all([import("vega"), import("vega-lite")]);
  const [vega, vl] = await vegaModules;
  const full = { ...spec, config: CONFIG };
  const compiled = vl.compile(full as unknown as TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    const svg = await view.toSVG();
    return svg
      .replace(/\bid="([^"]+)"/g, `id="${idPrefix}-$1"`)
      .replace(/url\(#([^)]+)\)/g, `url(#${idPrefix}-$1)`);
  } finally {
    view.finalize();
  }
}

/** Renders every chart of {@link chartSpecs} to SVG, in order. */
export async function renderCharts(
  metrics: MetricRow[],
  frontier: FrontierPoint[] = [],
  marks: ChartMarks = {},
): Promise<RenderedChart[]> {
  const out: RenderedChart[] = [];
  for (const c of chartSpecs(metrics, frontier, marks)) {
    out.push({ id: c.id, title: c.title, caption: c.caption, svg: await renderSvg(c.spec, c.id) });
  }
  return out;
}
