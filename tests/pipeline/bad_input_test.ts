/**
 * Bad input ends in exit code 2 with a message naming the file (and line, field or flag), never
 * exit 1, a stack trace or a silent success: the cases of issue 14's "Why" 5-7 through the CLI.
 */

import assert from "node:assert/strict";
import { readSafetensors, writeSafetensors } from "../../src/io/safetensors.ts";
import { makeTinyWorld, type TinyWorld } from "./tiny_world.ts";

async function run(task: string, args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-check", "-A", new URL(`../../tasks/${task}.ts`, import.meta.url).pathname]
      .concat(args),
    stdout: "piped",
    stderr: "piped",
    env: { DPO_DEBUG: "" },
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

/** Runs a task and expects exit 2 with `pattern` in its message and no stack trace. */
async function refused(task: string, args: string[], pattern: RegExp): Promise<string> {
  const r = await run(task, [...args, "--device", "cpu"]);
  assert.equal(r.code, 2, `${task} ${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
  return r.stderr;
}

const sft = (w: TinyWorld, data: string, ...more: string[]) => [
  "--model",
  w.base,
  "--data",
  data,
  "--output-dir",
  `${w.dir}/out`,
  "--max-steps",
  "1",
  ...more,
];

Deno.test("empty and too-small datasets are bad input (exit 2) naming the file or flag", async () => {
  await using w = await makeTinyWorld();
  const empty = `${w.dir}/empty.jsonl`;
  await Deno.writeTextFile(empty, "");
  await refused("sft", sft(w, empty), new RegExp(`${empty}`));
  const one = `${w.dir}/one.jsonl`;
  await Deno.writeTextFile(one, (await Deno.readTextFile(w.sft)).split("\n")[0] + "\n");
  await refused("sft", sft(w, one, "--eval-fraction", "0.5"), /--eval-fraction|one\.jsonl/);
});

Deno.test("a missing tensor or one of the wrong shape is exit 2, found from the header", async () => {
  await using w = await makeTinyWorld();
  const file = `${w.base}/model.safetensors`;
  const { tensors } = readSafetensors(await Deno.readFile(file), { file });
  const missing = new Map(tensors);
  missing.delete("model.norm.weight");
  await Deno.writeFile(file, writeSafetensors(missing));
  await refused("sft", sft(w, w.sft), /has no tensor 'model\.norm\.weight'/);
  const config = JSON.parse(await Deno.readTextFile(`${w.base}/config.json`));
  await Deno.writeFile(file, writeSafetensors(tensors));
  await Deno.writeTextFile(
    `${w.base}/config.json`,
    JSON.stringify({ ...config, num_hidden_layers: 1e8 }),
  );
  await refused("sft", sft(w, w.sft), /config\.json: num_hidden_layers: 100000000/);
  await Deno.writeTextFile(`${w.base}/config.json`, JSON.stringify({ ...config, vocab_size: 61 }));
  await refused("sft", sft(w, w.sft), /config\.json: vocab_size: 61 makes/);
});

Deno.test("a tokenizer.json that is not JSON, or not a tokenizer, is exit 2 naming its path", async () => {
  await using w = await makeTinyWorld();
  const path = `${w.base}/tokenizer.json`;
  await Deno.writeTextFile(path, "{ not json");
  await refused("sft", sft(w, w.sft), new RegExp(`${path}: invalid JSON`));
  await Deno.writeTextFile(path, "{}");
  await refused("sft", sft(w, w.sft), new RegExp(`${path}`));
});

Deno.test("an output folder that cannot be written says why, not 'file not found'", async () => {
  await using w = await makeTinyWorld();
  const stderr = await refused("sft", [
    ...sft(w, w.sft).slice(0, 4),
    "--output-dir",
    "/proc/dpo-test-out",
    "--max-steps",
    "1",
  ], /\/proc\/dpo-test-out/);
  assert.doesNotMatch(stderr, /not found/);
});

Deno.test("a precompute that keeps no pair is exit 2 and writes no cache", async () => {
  await using w = await makeTinyWorld();
  const output = `${w.dir}/ref.bin`;
  const args = ["--model", w.base, "--data", w.prefs, "--output", output, "--max-length", "1"];
  await refused("precompute", args, /prefs\.jsonl: no example left of its \d+ rows.*too_long/);
  assert.equal(await Deno.stat(output).then(() => true, () => false), false);
});

Deno.test("token ids of 2^40 or beyond the vocabulary are exit 2 naming file:line and field", async () => {
  await using w = await makeTinyWorld();
  const data = `${w.dir}/ids.jsonl`;
  const row = (chosen: number[]) =>
    JSON.stringify({ prompt_input_ids: [1, 5], chosen_input_ids: chosen, rejected_input_ids: [7] });
  await Deno.writeTextFile(data, [row([6]), row([6, 2 ** 40])].join("\n") + "\n");
  const output = `${w.dir}/ref.bin`;
  const args = ["--model", w.base, "--data", data, "--output", output];
  await refused("precompute", args, /ids\.jsonl:2: chosen_input_ids\[1\].*1099511627776/);
  await Deno.writeTextFile(data, [row([6]), row([6, 60])].join("\n") + "\n");
  await refused(
    "precompute",
    args,
    /ids\.jsonl:2: chosen_input_ids holds token id 60, outside the model's vocabulary \[0, 60\)/,
  );
  const dpo = ["--model", w.base, "--data", data, "--output-dir", `${w.dir}/dpo`, "--max-steps"];
  await refused("dpo", [...dpo, "1"], /ids\.jsonl:2: chosen_input_ids holds token id 60/);
});

Deno.test("a negative flag value is taken as the value; non-integers and meaningless negatives are refused", async () => {
  const { parseFlagsOrThrow } = await import("../../tasks/_cli.ts");
  const { checkTrainFlags, TRAIN_FLAGS } = await import("../../tasks/_flags.ts");
  const parse = (...args: string[]) => parseFlagsOrThrow("t", "", TRAIN_FLAGS, args);
  assert.equal(parse("--max-steps", "-1").maxSteps, -1);
  checkTrainFlags(parse("--max-steps", "-1"));
  assert.equal(parse("--weight-decay", "-.5").weightDecay, -0.5);
  for (
    const [args, pattern] of [
      [["--max-steps=2.5"], /--max-steps: must be -1.*got 2\.5/],
      [["--max-steps", "0"], /--max-steps: must be -1/],
      [["--save-steps=-1"], /--save-steps: must be an integer >= 0, got -1/],
      [["--eval-steps", "1.5"], /--eval-steps: must be an integer >= 0/],
      [["--warmup-steps", "-3"], /--warmup-steps: must be >= 0/],
    ] as const
  ) {
    assert.throws(() => checkTrainFlags(parse(...args)), pattern, args.join(" "));
  }
});
