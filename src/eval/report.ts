/**
 * The run report: one self-contained HTML page (inline CSS, inline SVG charts, no script, no
 * network) with the training curves, the evaluation table, samples side by side, the reward–KL
 * frontier and the run manifest. Rendering is a pure function of its input, so the same run gives
 * the same bytes; writing the file is the caller's job (this module is edge-safe).
 */

import {
  formatNumber,
  type FrontierPoint,
  type MetricRow,
  renderCharts,
  type RenderedChart,
} from "./charts.ts";
import { type BatchLayout, partialBatch, partialBatchNote } from "./batches.ts";

export type { FrontierPoint, MetricRow } from "./charts.ts";
export type { BatchLayout } from "./batches.ts";

/** A table of evaluation results: column order and one record per row (e.g. SFT vs DPO). */
export interface EvalTable {
  /** Column names, in display order. */
  columns: string[];
  /** One record per row, keyed by column name. */
  rows: Array<Record<string, string | number>>;
}

/** One prompt with the completions of several models, keyed by model name. */
export interface ReportSample {
  /** The prompt text. */
  prompt: string;
  /** Each model's completion, by model name. */
  columns: Record<string, string>;
}

/** Everything a report shows; each part but the title is optional and left out when absent. */
export interface ReportInput {
  /** Page title, e.g. the run's name. */
  title: string;
  /** Rows of the run's metrics.jsonl (TRL's names, `eval_`-prefixed eval rows). */
  metrics: MetricRow[];
  /** Evaluation results table. */
  evalTable?: EvalTable;
  /** Samples side by side. */
  samples?: ReportSample[];
  /** Reward–KL points, one per evaluation of each run. */
  frontier?: FrontierPoint[];
  /** The run's manifest (config, fingerprints, timings), shown collapsed as JSON. */
  manifest?: object;
  /**
   * How the training examples fell into batches: a partial last batch is explained above the
   * charts and its steps are marked on them. Absent: nothing is said about batches.
   */
  batches?: BatchLayout;
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

const CSS = `
:root { --fg:#1d2330; --muted:#5b6472; --line:#e3e6eb; --bg:#f6f7f9; --card:#fff; --accent:#4e79a7; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1000px; margin:0 auto; padding:28px 20px 48px; }
h1 { font-size:24px; margin:0 0 4px; letter-spacing:-0.01em; }
h2 { font-size:17px; margin:32px 0 10px; padding-bottom:4px; border-bottom:1px solid var(--line); }
.sub { color:var(--muted); margin:0 0 18px; }
.stats { display:flex; flex-wrap:wrap; gap:10px; margin:0 0 8px; padding:0; list-style:none; }
.stats li { background:var(--card); border:1px solid var(--line); border-radius:8px;
  padding:8px 14px; min-width:120px; }
.stats .k { display:block; color:var(--muted); font-size:12px; }
.stats .v { font-size:18px; font-weight:600; font-variant-numeric:tabular-nums; }
.note { background:#fff7e6; border:1px solid #f3d9a4; border-radius:8px; padding:8px 14px;
  margin:0 0 16px; }
figure.chart { background:var(--card); border:1px solid var(--line); border-radius:10px;
  margin:0 0 16px; padding:14px 16px 10px; overflow-x:auto; }
figure.chart h3 { font-size:15px; margin:0 0 6px; }
figure.chart svg { display:block; max-width:100%; height:auto; }
figcaption { color:var(--muted); font-size:13px; margin-top:6px; }
table { border-collapse:collapse; width:100%; background:var(--card); border:1px solid var(--line);
  border-radius:8px; overflow:hidden; font-size:13px; }
th, td { padding:6px 10px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#eef1f5; font-weight:600; }
tr:last-child td { border-bottom:none; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td.text { white-space:pre-wrap; word-break:break-word; }
td.prompt { color:var(--muted); font-style:italic; }
details { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:8px 14px; }
summary { cursor:pointer; font-weight:600; }
pre { margin:10px 0 0; font-size:12px; overflow-x:auto; white-space:pre-wrap; word-break:break-word; }
`;

/** A table cell: numbers right-aligned with 4 significant digits, text pre-wrapped. */
function cell(v: string | number | undefined): string {
  if (typeof v === "number") return `<td class="num">${escapeHtml(formatNumber(v))}</td>`;
  return `<td class="text">${escapeHtml(v ?? "")}</td>`;
}

/** Headline numbers: last logged train values of the main metrics, and the step count. */
function stats(metrics: MetricRow[]): string {
  const last = (key: string): number | undefined => {
    for (let i = metrics.length - 1; i >= 0; i--) {
      const v = metrics[i][key];
      if (typeof v === "number" && Number.isFinite(v)) return v;
    }
    return undefined;
  };
  const items: Array<[string, number | undefined]> = [
    ["steps", last("step")],
    ["train loss", last("loss")],
    ["eval loss", last("eval_loss")],
    ["reward accuracy", last("rewards/accuracies")],
    ["eval reward accuracy", last("eval_rewards/accuracies")],
    ["reward margin", last("rewards/margins")],
  ];
  const shown = items.filter(([, v]) => v !== undefined);
  if (!shown.length) return "";
  return `<ul class="stats">${
    shown.map(([k, v]) =>
      `<li><span class="k">${escapeHtml(k)}</span><span class="v">${
        formatNumber(v as number)
      }</span></li>`
    ).join("")
  }</ul>`;
}

function figure(c: RenderedChart): string {
  const caption = c.caption ? `<figcaption>${escapeHtml(c.caption)}</figcaption>` : "";
  return `<figure class="chart" data-chart="${escapeHtml(c.id)}"><h3>${
    escapeHtml(c.title)
  }</h3>${c.svg}${caption}</figure>`;
}

function evalSection(t: EvalTable): string {
  // Numeric columns are right-aligned, header included, so digits line up under their name.
  const numeric = (c: string) => t.rows.every((r) => typeof r[c] === "number");
  const head = t.columns.map((c) => `<th${numeric(c) ? ' class="num"' : ""}>${escapeHtml(c)}</th>`)
    .join("");
  const body = t.rows.map((r) => `<tr>${t.columns.map((c) => cell(r[c])).join("")}</tr>`).join("");
  return `<section id="eval"><h2>Evaluation</h2><table><thead><tr>${head}</tr></thead>` +
    `<tbody>${body}</tbody></table></section>`;
}

function samplesSection(samples: ReportSample[]): string {
  // Column order: first appearance across samples, so a model missing from one row keeps its place.
  const names = [...new Set(samples.flatMap((s) => Object.keys(s.columns)))];
  const head = ["prompt", ...names].map((c) => `<th>${escapeHtml(c)}</th>`).join("");
  const body = samples.map((s) =>
    `<tr><td class="text prompt">${escapeHtml(s.prompt)}</td>${
      names.map((n) => cell(s.columns[n])).join("")
    }</tr>`
  ).join("");
  return `<section id="samples"><h2>Samples</h2><table><thead><tr>${head}</tr></thead>` +
    `<tbody>${body}</tbody></table></section>`;
}

function manifestSection(manifest: object): string {
  return `<section id="manifest"><h2>Manifest</h2><details><summary>Run manifest (JSON)</summary>` +
    `<pre>${escapeHtml(JSON.stringify(manifest, null, 2))}</pre></details></section>`;
}

/**
 * Renders a run report as one self-contained HTML page: charts of loss, reward margins and
 * accuracies, chosen and rejected log-probs, optimizer state and the reward–KL frontier (each a
 * `<figure class="chart" data-chart="...">` with inline SVG, left out when its data is absent),
 * then the evaluation table, samples and the collapsible manifest. No script, no external URL.
 */
export async function renderReport(input: ReportInput): Promise<string> {
  const partial = input.batches && partialBatch(input.batches);
  const batchNote = input.batches && partialBatchNote(input.batches, { charts: true });
  const marks = partial && !partial.everyBatch
    ? {
      partialSteps: partial.steps,
      partialCaption: `Red dashed line: the partial batch (${partial.size} of ` +
        `${input.batches!.batchSize} ${input.batches!.unit ?? "examples"}).`,
    }
    : {};
  const charts = await renderCharts(input.metrics, input.frontier ?? [], marks);
  const training = charts.filter((c) => c.id !== "frontier");
  const frontier = charts.filter((c) => c.id === "frontier");
  const parts = [
    `<header><h1>${escapeHtml(input.title)}</h1>`,
    `<p class="sub">DPO run report · ${input.metrics.length} metric rows</p>`,
    stats(input.metrics),
    `</header>`,
  ];
  if (training.length) {
    parts.push(
      `<section id="training"><h2>Training</h2>${
        batchNote ? `<p class="note" id="partial-batch">${escapeHtml(batchNote)}</p>` : ""
      }${training.map(figure).join("")}</section>`,
    );
  }
  if (input.evalTable && input.evalTable.rows.length) parts.push(evalSection(input.evalTable));
  if (frontier.length) {
    parts.push(
      `<section id="frontier"><h2>Frontier</h2>${frontier.map(figure).join("")}</section>`,
    );
  }
  if (input.samples && input.samples.length) parts.push(samplesSection(input.samples));
  if (input.manifest !== undefined) parts.push(manifestSection(input.manifest));
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(input.title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
${parts.join("\n")}
</main>
</body>
</html>
`;
}
