/**
 * `deno task compare-methods`: offline DPO, iterative DPO (3 rounds), RSO and, when their
 * commands exist in deno.json, Online DPO and SPPO, on the embedded world from the same SFT model
 * (`deno task dpo --run-name <name>` trains it and the reference cache first), at matched compute:
 * every method trains on the same number of pairs (--pairs-budget, 16 a step), and the sampled and
 * trained (completion) tokens are counted and reported. Each method runs with --seeds seeds and
 * each policy is evaluated by `deno task eval --json` (held-out reward, KL, entropy, distinct-2).
 * Writes docs/experiments/methods-llvmpipe.json (or --output), a Markdown table on stdout and
 * methods.svg next to the JSON (src/eval/methods.ts).
 */

import { parseFlags, runMain, UsageError } from "./_cli.ts";
import { store } from "./_stage.ts";
import { renderSvg } from "../src/eval/charts.ts";
import { methodRows, type MethodRun, methodsChart, methodsMarkdown } from "../src/eval/methods.ts";
import { readPrompts } from "../src/data/prompts.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";

const flags = parseFlags("compare-methods", "Offline vs on-policy DPO variants, matched compute.", {
  "run-name": { type: "string", default: "compare", help: "runs/<name>: SFT model and runs" },
  seeds: { type: "number", default: 3, help: "training seeds per method" },
  "pairs-budget": { type: "number", default: 320, help: "pairs each method trains on" },
  device: { type: "string", default: "auto", choices: ["auto", "webgpu", "cpu"], help: "backend" },
  output: { type: "string", default: "docs/experiments/methods-llvmpipe.json", help: "JSON out" },
  methods: { type: "string", help: "comma-separated subset of the method names (default: all)" },
});

const BATCH = 16, NEW_TOKENS = 16;
const COMMON = [
  "--beta=0.5",
  "--learning-rate=1.5e-3",
  "--lr-scheduler-type=linear",
  "--warmup-steps=2",
  `--per-device-train-batch-size=${BATCH}`,
  "--max-length=64",
  "--max-prompt-length=32",
];

/** Runs `deno task <args>`; its stdout, wall seconds; stderr streamed to ours. */
async function task(args: string[]): Promise<{ stdout: string; seconds: number }> {
  console.error(`$ deno task ${args.join(" ")}`);
  const t0 = performance.now();
  const { code, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", ...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (code !== 0) throw new Error(`deno task ${args[0]} exited ${code}`);
  return { stdout: new TextDecoder().decode(stdout), seconds: (performance.now() - t0) / 1000 };
}

const lastJson = (s: string) => JSON.parse(s.trim().split("\n").at(-1)!);
const jsonl = async (path: string) =>
  (await store.readText(path)).split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));

/** Completion tokens (chosen + rejected) of a pairs file with token ids. */
async function pairTokens(path: string): Promise<number> {
  return (await jsonl(path)).reduce(
    (n, r) => n + r.chosen_input_ids.length + r.rejected_input_ids.length,
    0,
  );
}

await runMain(async () => {
  const seeds = Number(flags.seeds), budget = Number(flags.pairsBudget);
  if (!Number.isInteger(seeds) || seeds < 1) throw new UsageError("--seeds: an integer >= 1");
  if (!Number.isInteger(budget) || budget < 3 * BATCH) {
    throw new UsageError(`--pairs-budget: an integer >= ${3 * BATCH}`);
  }
  const tasks = JSON.parse(await store.readText("deno.json")).tasks as Record<string, string>;
  const run = `runs/${flags.runName}`, sft = `${run}/sft`, device = `--device=${flags.device}`;
  // The SFT model and its reference cache: the default pipeline under this run name.
  const pipeline = await task(["dpo", `--run-name=${flags.runName}`, device]);
  const cache = `${run}/ref_cache/ref_cache.bin`;
  if (!await store.exists(cache)) throw new Error(`no reference cache at ${cache}`);
  const steps = Math.round(budget / BATCH);
  // Training prompts: the distinct prompts of the preference data, budget-sized subsets.
  const all = await readPrompts(store, "data/preferences.jsonl", { unique: true });
  const subset = async (n: number) => {
    const path = `${run}/methods/prompts-${n}.jsonl`;
    await store.mkdirp(`${run}/methods`);
    const text = all.slice(0, n).map((p) => JSON.stringify({ prompt: p })).join("\n") + "\n";
    await store.writeFileAtomic(path, new TextEncoder().encode(text));
    return path;
  };
  const perRound = Math.round(budget / 3);
  const rounds =
    (name: string, extra: string[], prompts: string) => async (out: string, seed: number) => {
      const { stdout, seconds } = await task([
        name,
        `--model=${sft}`,
        `--prompts=${prompts}`,
        `--output-dir=${out}`,
        `--max-new-tokens=${NEW_TOKENS}`,
        `--seed=${seed}`,
        ...COMMON,
        ...extra,
        device,
        "--json",
      ]);
      const r = lastJson(stdout);
      let trained = 0, sampled = 0, pairs = 0;
      for (const round of r.rounds) {
        trained += await pairTokens(round.label.pairsFile);
        sampled += round.label.sampledTokens;
        pairs += round.label.pairs;
      }
      return { policy: r.policy, seconds, trained, sampled, pairs };
    };
  type Runner = (out: string, seed: number) => Promise<
    { policy: string; seconds: number; trained: number; sampled: number; pairs: number }
  >;
  const methods: Array<[string, string, Runner]> = [
    ["offline DPO", "dpo", async (out, seed) => {
      const { seconds } = await task([
        "dpo",
        `--model=${sft}`,
        "--data=data/preferences.jsonl",
        `--ref-cache=${cache}`,
        `--output-dir=${out}`,
        `--max-steps=${steps}`,
        `--seed=${seed}`,
        ...COMMON,
        device,
        "--overwrite-output-dir",
      ]);
      // The pairs of a seeded order are not logged: their completion tokens (EOS included) at
      // the data's mean per pair.
      const tok = await loadTokenizer(store, sft);
      const data = await jsonl("data/preferences.jsonl");
      const mean = data.reduce(
        (n, r) => n + tok.encode(r.chosen).length + tok.encode(r.rejected).length + 2,
        0,
      ) / data.length;
      return {
        policy: out,
        seconds,
        trained: mean * steps * BATCH,
        sampled: 0,
        pairs: steps * BATCH,
      };
    }],
    [
      "iterative DPO (3 rounds)",
      "iterative-dpo",
      async (out, seed) =>
        await rounds(
          "iterative-dpo",
          ["--rounds=3", "--samples-per-prompt=2"],
          await subset(perRound),
        )(
          out,
          seed,
        ),
    ],
    [
      "RSO",
      "rso",
      async (out, seed) =>
        await rounds("rso", ["--samples-per-prompt=4"], await subset(budget))(out, seed),
    ],
    ["Online DPO", "online-dpo", async (out, seed) => {
      const { seconds } = await task([
        "online-dpo",
        `--run-name=${flags.runName}`,
        `--prompts=${await subset(budget)}`,
        `--output-dir=${out}`,
        `--max-new-tokens=${NEW_TOKENS}`,
        `--seed=${seed}`,
        ...COMMON.filter((a) => !a.startsWith("--max-length")), // online-dpo: prompt length only
        device,
        "--overwrite-output-dir",
      ]);
      const rows = (await jsonl(`${out}/metrics.jsonl`)).filter((r) => "loss" in r);
      const sum = (k: string) => rows.reduce((n, r) => n + (r[k] ?? 0), 0);
      return {
        policy: out,
        seconds,
        trained: sum("trained_tokens"),
        sampled: sum("sampled_tokens"),
        pairs: sum("pairs"),
      };
    }],
    [
      "SPPO (3 rounds)",
      "sppo",
      async (out, seed) =>
        await rounds("sppo", ["--rounds=3", "--samples-per-prompt=4"], await subset(perRound))(
          out,
          seed,
        ),
    ],
  ];
  const wanted = flags.methods ? String(flags.methods).split(",").map((s) => s.trim()) : null;
  const runs: MethodRun[] = [];
  const skipped: string[] = [];
  let sftEval: Record<string, unknown> | undefined;
  for (const [method, command, runner] of methods) {
    if (wanted && !wanted.includes(command)) continue;
    if (!(command in tasks)) {
      skipped.push(`${method}: no \`deno task ${command}\` in deno.json`);
      continue;
    }
    for (let seed = 1; seed <= seeds; seed++) {
      const out = `${run}/methods/${command}-seed${seed}`;
      try {
        const t = await runner(out, seed);
        const { stdout } = await task([
          "eval",
          `--model=${t.policy}`,
          `--ref-model=${sft}`,
          "--data=data/prompts_eval.jsonl",
          `--max-new-tokens=${NEW_TOKENS}`,
          "--beta=0.5",
          "--samples=0",
          device,
          "--json",
        ]);
        const e = lastJson(stdout);
        sftEval ??= e.reference;
        runs.push({
          method,
          seed,
          reward: e.policy.reward,
          kl: e.policy.kl,
          entropy: e.policy.entropy,
          distinct2: e.policy.distinct2,
          sampledTokens: t.sampled,
          trainedTokens: t.trained,
          pairs: t.pairs,
          trainSeconds: t.seconds,
        });
      } catch (error) {
        skipped.push(`${method} seed ${seed}: ${(error as Error).message}`);
        console.error(`${method} seed ${seed} failed: ${(error as Error).message}`);
        continue;
      }
      console.error(`${method} seed ${seed}: ${JSON.stringify(runs.at(-1))}`);
    }
  }
  const rows = methodRows(runs);
  const sftRow = sftEval as { reward: number; entropy: number; distinct2: number } | undefined;
  const result = {
    command: "deno task compare-methods " + Deno.args.join(" "),
    pairs_budget: budget,
    batch_size: BATCH,
    max_new_tokens: NEW_TOKENS,
    sft: sftRow
      ? { reward: sftRow.reward, entropy: sftRow.entropy, distinct2: sftRow.distinct2 }
      : null,
    pipeline_seconds: pipeline.seconds,
    skipped,
    rows,
    runs,
  };
  const output = String(flags.output);
  const dir = output.includes("/") ? output.slice(0, output.lastIndexOf("/")) : ".";
  await store.mkdirp(dir);
  await store.writeFileAtomic(
    output,
    new TextEncoder().encode(JSON.stringify(result, null, 1) + "\n"),
  );
  const chart = methodsChart(runs, sftRow);
  const svg = await renderSvg(chart.spec, chart.id);
  await store.writeFileAtomic(`${dir}/methods.svg`, new TextEncoder().encode(svg));
  console.log(methodsMarkdown(rows));
  if (skipped.length) console.error(`skipped: ${skipped.join("; ")}`);
  console.error(`wrote ${output} and ${dir}/methods.svg`);
});
