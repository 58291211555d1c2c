/**
 * What the stage tasks print is true: a stage that ran says how long it took (precompute: what
 * it wrote), one whose outputs are up to date says "up to date: skipped" and nothing else about
 * work; a partial last batch is named, and `--dataloader-drop-last` drops it.
 */

import assert from "node:assert/strict";
import { makeTinyWorld } from "./tiny_world.ts";

async function run(task: string, args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-check",
      "-A",
      new URL(`../../tasks/${task}.ts`, import.meta.url).pathname,
      ...args,
      "--device",
      "cpu",
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("a rerun whose outputs are up to date says skipped, never wrote or took", async () => {
  const w = await makeTinyWorld();
  try {
    const cache = `${w.dir}/ref.bin`;
    const precompute = ["--model", w.base, "--data", w.prefs, "--output", cache];
    const first = await run("precompute", precompute);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, new RegExp(`wrote ${cache} \\(12 pairs\\)`));
    assert.match(first.stderr, /precompute took \d/);
    const again = await run("precompute", precompute);
    assert.equal(again.code, 0, again.stderr);
    assert.match(
      again.stderr,
      new RegExp(`${cache} is up to date: skipped \\(--force redoes it\\)`),
    );
    assert.doesNotMatch(again.stderr, /wrote|took/);

    const sft = ["--model", w.base, "--data", w.sft, "--output-dir", `${w.dir}/sft`];
    const trained = await run("sft", [...sft, "--max-steps", "1"]);
    assert.equal(trained.code, 0, trained.stderr);
    assert.match(trained.stderr, /sft took \d/);
    const skipped = await run("sft", [...sft, "--max-steps", "1"]);
    assert.match(skipped.stderr, /sft is up to date: skipped \(--force redoes it\)/);
    assert.doesNotMatch(skipped.stderr, /took/);
    // The hint is true: --force does redo it.
    const forced = await run("sft", [...sft, "--max-steps", "1", "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stderr, /sft took \d/);
    assert.doesNotMatch(forced.stderr, /up to date/);
  } finally {
    await Deno.remove(w.dir, { recursive: true });
  }
});

Deno.test("a partial last batch is named in the log and report; --dataloader-drop-last drops it", async () => {
  const w = await makeTinyWorld();
  try {
    const cache = `${w.dir}/ref.bin`;
    assert.equal(
      (await run("precompute", ["--model", w.base, "--data", w.prefs, "--output", cache])).code,
      0,
    );
    const dpo = (out: string, extra: string[] = []) =>
      run("dpo", [
        "--model",
        w.base,
        "--data",
        w.prefs,
        "--ref-cache",
        cache,
        "--output-dir",
        `${w.dir}/${out}`,
        "--batch-size",
        "5",
        "--logging-steps",
        "1",
        ...extra,
      ]);
    const kept = await dpo("kept");
    assert.equal(kept.code, 0, kept.stderr);
    assert.match(
      kept.stderr,
      /dpo: last batch of each epoch is partial: 2 of 5 pairs \(12 = 2 × 5 \+ 2\), at step 3;/,
    );
    const report = await Deno.readTextFile(`${w.dir}/kept/report.html`);
    assert.match(
      report,
      /id="partial-batch">The last batch of each epoch is partial: 2 of 5 pairs/,
    );
    const manifest = JSON.parse(await Deno.readTextFile(`${w.dir}/kept/manifest.json`));
    assert.deepEqual(manifest.results.batches, {
      examples: 12,
      batchSize: 5,
      gradientAccumulationSteps: 1,
      dropLast: false,
      steps: 3,
      unit: "pairs",
    });

    const dropped = await dpo("dropped", ["--dataloader-drop-last"]);
    assert.equal(dropped.code, 0, dropped.stderr);
    assert.doesNotMatch(dropped.stderr, /partial/);
    const rows = (await Deno.readTextFile(`${w.dir}/dropped/metrics.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l));
    assert.equal(rows.at(-1).step, 2, "two full batches of 5, the 2 left over dropped");
    const droppedReport = await Deno.readTextFile(`${w.dir}/dropped/report.html`);
    assert(!droppedReport.includes("partial-batch"), "no partial batch to explain");

    // Nothing left to train on is bad input, said with the flag to change.
    const none = await dpo("none", ["--dataloader-drop-last", "--batch-size", "16"]);
    assert.equal(none.code, 2, none.stderr);
    assert.match(
      none.stderr,
      /--dataloader-drop-last\): the 12 training pairs are fewer than one batch of 16/,
    );
  } finally {
    await Deno.remove(w.dir, { recursive: true });
  }
});
