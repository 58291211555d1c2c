/**
 * The method comparison's aggregation (src/eval/methods.ts): mean and sample standard deviation
 * by hand, rows in first-seen order, the Markdown table and a chart that renders to SVG.
 */

import assert from "node:assert/strict";
import {
  methodRows,
  type MethodRun,
  methodsChart,
  methodsMarkdown,
  spread,
} from "../../src/eval/methods.ts";
import { renderSvg } from "../../src/eval/charts.ts";

const run = (method: string, seed: number, reward: number, kl: number): MethodRun => ({
  method,
  seed,
  reward,
  kl,
  entropy: 1,
  distinct2: 0.5,
  sampledTokens: 100 * seed,
  trainedTokens: 10,
  pairs: 16,
  trainSeconds: 2,
});

Deno.test("spread is the mean and the n − 1 standard deviation", () => {
  // 1, 2, 3, 6: mean 3, squared deviations 4 + 1 + 0 + 9 = 14, variance 14 / 3.
  const s = spread([1, 2, 3, 6]);
  assert.equal(s.mean, 3);
  assert.ok(Math.abs(s.sd - Math.sqrt(14 / 3)) < 1e-15);
  assert.deepEqual(spread([5]), { mean: 5, sd: 0 });
  assert.ok(Number.isNaN(spread([]).mean));
});

Deno.test("methodRows groups runs by method in first-seen order", async () => {
  const runs = [run("B", 1, 0.5, 2), run("A", 1, 0.7, 4), run("B", 2, 0.7, 4)];
  const rows = methodRows(runs);
  assert.deepEqual(rows.map((r) => r.method), ["B", "A"]);
  assert.deepEqual(rows[0].seeds, [1, 2]);
  assert.ok(Math.abs(rows[0].reward.mean - 0.6) < 1e-15);
  assert.ok(Math.abs(rows[0].reward.sd - Math.sqrt(0.02)) < 1e-15);
  assert.equal(rows[0].sampledTokens.mean, 150);
  assert.equal(rows[1].kl.sd, 0);
  const md = methodsMarkdown(rows).split("\n");
  assert.equal(md.length, 4);
  assert.match(md[2], /^\| B \| 2 \| 0\.600 ± 0\.141 \| 3\.00 ± 1\.41 \|/);
  const chart = methodsChart(runs, { reward: 0.4 });
  const svg = await renderSvg(chart.spec, chart.id);
  assert.match(svg, /^<svg/);
  assert.match(svg, /held-out ground-truth reward/);
});
