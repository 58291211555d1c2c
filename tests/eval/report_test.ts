/**
 * The run report: rendered from a sample run (whose chosen log-prob falls while the margin grows),
 * opened in headless Chromium to check that every chart drew, and checked to be self-contained.
 */

import assert from "node:assert/strict";
import {
  type FrontierPoint,
  type MetricRow,
  renderReport,
  type ReportInput,
} from "../../src/eval/report.ts";
import { chartSpecs } from "../../src/eval/charts.ts";
import { partialBatch, partialBatchNote } from "../../src/eval/batches.ts";
import { browserTest } from "../browser_helpers.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url);
/** Where to keep the full report's screenshot for a person to look at (off unless set). */
const SCREENSHOT = Deno.env.get("DPO_REPORT_SCREENSHOT");

async function readJsonl<T>(name: string): Promise<T[]> {
  const text = await Deno.readTextFile(new URL(name, FIXTURES));
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as T);
}

/** A full report input: metrics and frontier from the fixtures, an eval table, samples, manifest. */
async function sampleInput(): Promise<ReportInput> {
  return {
    title: "DPO on the sentiment world (sample run)",
    metrics: await readJsonl<MetricRow>("report_metrics.jsonl"),
    frontier: await readJsonl<FrontierPoint>("report_frontier.jsonl"),
    evalTable: {
      columns: ["model", "reward", "reward sd", "KL", "length", "pref. accuracy"],
      rows: [
        {
          model: "SFT",
          reward: 0.4812,
          "reward sd": 0.0123,
          KL: 0,
          length: 11.2,
          "pref. accuracy": 0.5,
        },
        {
          model: "DPO β=0.1",
          reward: 0.7731,
          "reward sd": 0.0091,
          KL: 6.214,
          length: 12.8,
          "pref. accuracy": 0.86,
        },
      ],
    },
    samples: [
      {
        prompt: "the film was",
        columns: { SFT: "long and the plot was fine", "DPO β=0.1": "a warm and lovely story" },
      },
      {
        prompt: "i expected <more> & better",
        columns: { SFT: "but it was dull", "DPO β=0.1": "and it was wonderful" },
      },
    ],
    manifest: { model: "data/base", beta: 0.1, lr: 5e-6, seed: 0, steps: 80 },
    // Two epochs of 40 batches: 39 of 16 pairs and a last one of 5, at steps 40 and 80.
    batches: {
      examples: 629,
      batchSize: 16,
      gradientAccumulationSteps: 1,
      dropLast: false,
      steps: 80,
      unit: "pairs",
    },
  };
}

browserTest(
  "every chart of the report renders as an SVG with marks in headless Chromium",
  async (page) => {
    const html = await renderReport(await sampleInput());
    const dir = await Deno.makeTempDir({ prefix: "dpo_report_" });
    try {
      const file = `${dir}/report.html`;
      await Deno.writeTextFile(file, html);
      // Offline by construction: any request other than the file itself fails the test.
      const requests: string[] = [];
      page.on("request", (r) => {
        if (!r.url().startsWith("file://")) requests.push(r.url());
      });
      await page.setViewportSize({ width: 1100, height: 900 });
      await page.goto(`file://${file}`);
      const charts = await page.$$eval("figure.chart", (figs) =>
        figs.map((f) => {
          const svg = f.querySelector("svg");
          const box = svg?.getBoundingClientRect();
          // vega draws lines and points as <path> inside g.mark-line / g.mark-symbol.
          const marks = [...f.querySelectorAll("g.mark-line path, g.mark-symbol path")]
            .filter((p) => (p.getAttribute("d") ?? "").length > 2);
          return {
            id: f.getAttribute("data-chart"),
            width: box?.width ?? 0,
            height: box?.height ?? 0,
            lines: f.querySelectorAll("g.mark-line path").length,
            marks: marks.length,
            // The partial batch's red dashed rules, one per panel and partial step.
            partialRules: [...f.querySelectorAll("g.mark-rule line, g.mark-rule path")]
              .filter((l) => l.getAttribute("stroke") === "#e15759").length,
          };
        }));
      assert.deepEqual(charts.map((c) => c.id), [
        "loss",
        "rewards",
        "logps",
        "optimizer",
        "frontier",
      ]);
      assert.deepEqual(
        Object.fromEntries(charts.map((c) => [c.id, c.partialRules])),
        { loss: 2, rewards: 4, logps: 2, optimizer: 4, frontier: 0 },
      );
      for (const c of charts) {
        assert(c.width > 100 && c.height > 100, `${c.id}: svg box ${c.width}x${c.height}`);
        assert(
          c.lines > 0 && c.marks > 0,
          `${c.id}: ${c.lines} line paths, ${c.marks} marks drawn`,
        );
      }
      assert.deepEqual(requests, []);
      // The screenshot is taken in the test's own folder (removed below) and is a real PNG.
      const png = await page.screenshot({ path: `${dir}/report.png`, fullPage: true });
      assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      if (SCREENSHOT) {
        await Deno.copyFile(`${dir}/report.png`, SCREENSHOT);
        console.log(`report screenshot: ${SCREENSHOT}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("the report references no external URL and needs no script", async () => {
  const html = await renderReport(await sampleInput());
  // The only URLs allowed are SVG namespace names, which are identifiers, never fetched.
  const stripped = html.replace(/\sxmlns(:\w+)?="http:\/\/www\.w3\.org\/[^"]*"/g, "");
  assert.deepEqual(stripped.match(/https?:\/\/[^\s"'<>]*/g) ?? [], []);
  assert(!/<script/i.test(html), "the report contains a script");
  assert(!/\b(src|href)=/i.test(html), "the report links a resource");
});

Deno.test("the report leaves out charts without data and escapes text", async () => {
  const metrics: MetricRow[] = [1, 2, 3, 4].map((step) => ({ step, loss: 0.7 - 0.1 * step }));
  const html = await renderReport({
    title: "a <b> run",
    metrics,
    samples: [{ prompt: "<script>alert(1)</script>", columns: { SFT: "x & y" } }],
  });
  const ids = [...html.matchAll(/data-chart="([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(ids, ["loss"]);
  assert.ok(html.includes("<title>a &lt;b&gt; run</title>"), "<title>a &lt;b&gt; run</title>");
  assert.ok(
    html.includes("&lt;script&gt;alert(1)&lt;/script&gt;"),
    "&lt;script&gt;alert(1)&lt;/script&gt;",
  );
  assert.ok(html.includes("x &amp; y"), "x &amp; y");
  assert(!html.includes("<details>"), "no manifest given, none shown");
  assert(!html.includes('id="eval"'), "no eval table given, none shown");
});

Deno.test("the log-prob chart says when the chosen log-prob fell", async () => {
  const html = await renderReport({
    title: "run",
    metrics: await readJsonl("report_metrics.jsonl"),
  });
  assert.match(html, /The chosen log-prob fell from -2\d\.\d+ to -3\d\.\d+ nats/);
  // Element ids are prefixed per chart, so several inline SVGs never share one.
  const ids = [...html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]);
  assert.equal(ids.length, new Set(ids).size);
});

Deno.test("a partial last batch is counted, placed at its steps, and dropped by drop-last", () => {
  const layout = {
    examples: 3009,
    batchSize: 16,
    gradientAccumulationSteps: 1,
    dropLast: false,
    steps: 189,
    unit: "pairs",
  };
  assert.deepEqual(partialBatch(layout), { size: 1, steps: [189], everyBatch: false });
  assert.equal(
    partialBatchNote(layout),
    "last batch of each epoch is partial: 1 of 16 pairs (3009 = 188 × 16 + 1), at step 189; " +
      "--dataloader-drop-last drops it",
  );
  assert.match(
    partialBatchNote(layout, { charts: true })!,
    /^The last batch of each epoch is partial: 1 of 16 pairs \(3009 = 188 × 16 \+ 1\), used at step 189\. .*red dashed line.*--dataloader-drop-last drops that batch\.$/,
  );
  // Two epochs, 4 micro-batches per step: micro-batches 188 and 377 (from 0) are the partial ones.
  assert.deepEqual(
    partialBatch({ ...layout, gradientAccumulationSteps: 4, steps: 95 })!.steps,
    [48, 95],
  );
  assert.equal(partialBatch({ ...layout, dropLast: true, steps: 188 }), undefined);
  assert.equal(partialBatch({ ...layout, examples: 3008, steps: 188 }), undefined);
  assert.equal(partialBatchNote({ ...layout, examples: 3008 }), undefined);
  const small = partialBatch({ ...layout, examples: 5, steps: 3 })!;
  assert.deepEqual(small, { size: 5, steps: [1, 2, 3], everyBatch: true });
});

Deno.test("the report explains a partial last batch above the charts and marks its steps", async () => {
  const input = await sampleInput();
  const html = await renderReport(input);
  assert.match(
    html,
    /<p class="note" id="partial-batch">The last batch of each epoch is partial: 5 of 16 pairs \(629 = 39 × 16 \+ 5\), used at steps 40, 80\./,
  );
  assert.match(html, /Red dashed line: the partial batch \(5 of 16 pairs\)\./);
  const specs = chartSpecs(input.metrics, [], { partialSteps: [40, 80], partialCaption: "x" });
  const loss = specs.find((c) => c.id === "loss")!;
  const layers = (loss.spec as { layer: Array<{ data?: { values: unknown[] } }> }).layer;
  assert.deepEqual(layers[0].data?.values, [{ step: 40 }, { step: 80 }]);
  assert.equal(loss.caption, "x");
  // Full batches, or the partial one dropped: no note and no marks.
  for (
    const batches of [{ ...input.batches!, examples: 640 }, { ...input.batches!, dropLast: true }]
  ) {
    const plain = await renderReport({ ...input, batches });
    assert(!plain.includes("partial-batch"), "no note");
    assert(!plain.includes("Red dashed line"), "no caption");
  }
});
