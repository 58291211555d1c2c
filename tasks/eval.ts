/**
 * `deno task eval --model DIR --ref-model DIR --data FILE`: samples the held-out prompts at
 * temperature 1 with the reference and with the model (same seeds), and compares their mean
 * ground-truth reward (± spread over seeds), sequence KL(model ‖ reference), completion length,
 * per-token entropy and distinct-1/2 of the samples (src/eval/diversity.ts)
 * and, with `--pairs`, the implicit-reward accuracy and the log-probs of held-out chosen and
 * rejected completions (src/eval/evaluate.ts). A table and a few samples side by side go to
 * stderr; `--json` prints one JSON object on stdout.
 */

import { PREFERENCE_LOSS_DEFAULTS } from "../src/backend/mod.ts";
import { parseFlags, Progress, runMain, UsageError } from "./_cli.ts";
import { openBackend, store } from "./_stage.ts";
import { FROZEN_FLAGS } from "./_flags.ts";
import { sentimentReward } from "../src/world/reward.ts";
import type { DeviceChoice } from "../src/pipeline/device.ts";
import { type Comparison, evaluateFolders } from "../src/eval/compare.ts";
import type { ModelEvaluation } from "../src/eval/evaluate.ts";

const flags = parseFlags(
  "eval",
  "Evaluates a model against its reference: reward, KL, length, preference accuracy, samples.",
  {
    model: { type: "string", help: "model folder to evaluate (its tokenizer files are used)" },
    "ref-model": { type: "string", help: "reference model folder (e.g. the SFT model)" },
    data: { type: "string", help: 'held-out prompts: JSONL with a "prompt" string per line' },
    pairs: { type: "string", help: "held-out preference pairs (accuracy and log-probs); optional" },
    seeds: {
      type: "number",
      default: 3,
      help: "sampling seeds (each prompt sampled once per seed)",
    },
    seed: { type: "number", default: 0, help: "first sampling seed" },
    "max-new-tokens": { type: "number", default: 32, help: "tokens generated per prompt at most" },
    beta: {
      type: "number",
      default: PREFERENCE_LOSS_DEFAULTS.beta,
      help: "β of the implicit reward β log π/ref",
    },
    "batch-size": { type: "number", default: 32, help: "prompts sampled and scored at once" },
    samples: { type: "number", default: 4, help: "samples shown side by side" },
    device: {
      type: "string",
      default: "auto",
      choices: ["auto", "webgpu", "cpu"],
      help: "backend",
    },
    ...FROZEN_FLAGS,
    json: {
      type: "boolean",
      default: false,
      help: "print the results as one JSON object on stdout",
    },
  },
);

const log = (s: string) => console.error(s);

/** An integer flag with a lower bound, or a usage error naming it. */
function intFlag(name: string, value: unknown, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name}: expected an integer >= ${min}, got ${value}`);
  }
  return n;
}

const num = (v: number, digits = 3) => (Number.isFinite(v) ? v.toFixed(digits) : String(v));

/** The comparison table as aligned text. */
function textTable(c: Comparison, names: [string, string]): string {
  const withPairs = c.reference.pairs !== undefined;
  const head = ["model", "reward ± sd", "KL(π‖ref)", "length", "eos", "entropy", "distinct-2"];
  if (withPairs) head.push("accuracy", "logps/chosen", "logps/rejected");
  const row = (name: string, e: ModelEvaluation) => {
    const cells = [
      name,
      `${num(e.reward)} ± ${num(e.rewardStd)}`,
      num(e.kl),
      num(e.length, 1),
      num(e.eosFraction, 2),
      num(e.entropy),
      num(e.distinct2),
    ];
    if (e.pairs) {
      cells.push(
        e.isReference ? "—" : num(e.pairs.accuracy),
        num(e.pairs.chosenLogps, 2),
        num(e.pairs.rejectedLogps, 2),
      );
    }
    return cells;
  };
  const rows = [head, row(names[0], c.reference), row(names[1], c.policy)];
  const widths = head.map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  return rows.map((r) => r.map((cell, j) => cell.padEnd(widths[j])).join("  ")).join("\n");
}

await runMain(async () => {
  for (const name of ["model", "ref-model", "data"]) {
    const key = name.replace(/-([a-z])/g, (_, ch: string) => ch.toUpperCase());
    if (!flags[key]) throw new UsageError(`--${name} is required. Run \`deno task eval --help\`.`);
  }
  const seedCount = intFlag("seeds", flags.seeds, 1);
  const firstSeed = intFlag("seed", flags.seed, 0);
  const maxNewTokens = intFlag("max-new-tokens", flags.maxNewTokens, 1);
  const batchSize = intFlag("batch-size", flags.batchSize, 1);
  const sampleCount = intFlag("samples", flags.samples, 0);
  const beta = Number(flags.beta);
  if (!(beta > 0)) throw new UsageError(`--beta: expected a number > 0, got ${flags.beta}`);

  // Missing inputs are usage errors that name their flag (exit 2), checked before the device.
  for (const name of ["model", "ref-model"]) {
    const dir = String(flags[name === "model" ? "model" : "refModel"]);
    if (!await store.exists(`${dir}/config.json`)) {
      throw new UsageError(`--${name}: ${dir} is not a model folder (no config.json)`);
    }
  }
  for (const [name, path] of [["data", flags.data], ["pairs", flags.pairs]] as const) {
    if (path && !await store.exists(String(path))) {
      throw new UsageError(`--${name}: ${path}: no such file`);
    }
  }

  const backend = await openBackend(flags.device as DeviceChoice, flags);
  const bars = new Map<string, Progress>();
  const start = performance.now();
  const names: [string, string] = ["reference", "model"];
  const result = await evaluateFolders(store, backend, {
    model: String(flags.model),
    refModel: String(flags.refModel),
    prompts: String(flags.data),
    pairsFile: flags.pairs ? String(flags.pairs) : undefined,
    seeds: Array.from({ length: seedCount }, (_, i) => firstSeed + i),
    maxNewTokens,
    batchSize,
    beta,
    sampleCount,
    names,
    frozenDtype: flags.frozenDtype as "auto" | "f32",
    reward: sentimentReward,
    onProgress: (stage, done, total) => {
      let bar = bars.get(stage);
      if (!bar) bars.set(stage, bar = new Progress(stage, total));
      if (done === 0) return; // the bar's clock starts; nothing to draw yet
      if (done >= total) bar.done();
      else bar.update(done);
    },
  });
  const seconds = (performance.now() - start) / 1000;

  log(
    `\n${result.policy.prompts} prompts × ${seedCount} seeds, temperature 1, ` +
      `at most ${maxNewTokens} new tokens (${seconds.toFixed(1)} s on ${backend.adapterName})`,
  );
  log(textTable(result, names));
  for (const [name, e] of [[names[0], result.reference], [names[1], result.policy]] as const) {
    const t = e.timings;
    log(
      `${name}: ${e.seconds.toFixed(1)} s (sampling ${t.sampling.toFixed(1)} s, ` +
        `KL ${t.kl.toFixed(1)} s, pairs ${t.pairs.toFixed(1)} s)`,
    );
  }
  if (result.samples.length) {
    log("\nsamples (seed " + firstSeed + "):");
    for (const s of result.samples) {
      log(`  ${s.prompt}`);
      for (const [name, text] of Object.entries(s.columns)) log(`    ${name.padEnd(9)} ${text}`);
    }
  }
  if (flags.json) {
    console.log(JSON.stringify({
      model: flags.model,
      ref_model: flags.refModel,
      data: flags.data,
      pairs: flags.pairs ?? null,
      adapter: backend.adapterName,
      seconds,
      reference: result.reference,
      policy: result.policy,
      eval_table: result.evalTable,
      samples: result.samples,
    }));
  }
  backend.destroy();
});
