/**
 * The command line: --help on every task, exit code 2 with a message that says what to do for
 * bad usage, a stale reference cache (other data, another tokenizer, another max length) and a
 * corrupted one.
 */

import assert from "node:assert/strict";
import { makeTinyWorld } from "./tiny_world.ts";

const TASKS = [
  "dpo",
  "sft",
  "precompute",
  "bench",
  "cache_dump",
  "generate",
  "eval",
  "frontier",
  "kto",
  "world",
  "pretrain",
  "preferences",
  "mutants",
  "plan",
  "sppo",
  "online_dpo",
  "cache_export",
  "cache_import",
  "tune",
];

async function run(
  task: string,
  args: string[],
): Promise<{ code: number; stderr: string; stdout: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      // Type-checked, so a type error in a task fails here too (cheap once Deno's cache is warm,
      // as after `deno task check`: ~9 s for the CLI tests against ~40 s cold).
      "--check",
      "--unstable-webgpu",
      "-A",
      new URL(`../../tasks/${task}.ts`, import.meta.url).pathname,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("every task answers --help with exit code 0", async () => {
  for (const task of TASKS) {
    const r = await run(task, ["--help"]);
    assert.equal(r.code, 0, `${task} --help: ${r.stderr}`);
    assert.match(r.stdout, /deno task/, `${task} prints usage`);
    for (const line of r.stdout.split("\n")) {
      assert.doesNotMatch(line, /\(default: \)/, `${task} --help prints an empty default`);
      assert.doesNotMatch(line, /\(default\b.*\(default\b/, `${task} --help names two defaults`);
    }
  }
});

Deno.test("an unknown flag or a bad value exits with code 2 naming the flag", async () => {
  const unknown = await run("dpo", ["--bogus"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /bogus/);
  const bad = await run("dpo", ["--beta", "abc", "--model", "m", "--data", "d"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--beta: expected a number/);
});

Deno.test("the default pipeline refuses training flags it would ignore, before any work", async () => {
  const r = await run("dpo", ["--max-steps", "5", "--beta", "0.2", "--run-name", "x"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--beta, --max-steps: apply to a run with --model and --data/);
  assert.match(r.stderr, /src\/pipeline\/defaults\.ts/);
  assert.doesNotMatch(r.stderr, /--run-name:/);
  assert.doesNotMatch(r.stderr, /default pipeline on/, "no stage started");
});

Deno.test("a stale or corrupted reference cache is refused with exit code 2", async () => {
  await using w = await makeTinyWorld();
  const cache = `${w.dir}/ref.bin`;
  const built = await run("precompute", [
    "--model",
    w.base,
    "--data",
    w.prefs,
    "--output",
    cache,
    "--device",
    "cpu",
  ]);
  assert.equal(built.code, 0, built.stderr);
  const dpo = (extra: string[], data = w.prefs, model = w.base) =>
    run("dpo", [
      "--model",
      model,
      "--data",
      data,
      "--ref-cache",
      cache,
      "--output-dir",
      `${w.dir}/out`,
      "--max-steps",
      "1",
      "--batch-size",
      "4",
      "--device",
      "cpu",
      ...extra,
    ]);
  const ok = await dpo([]);
  assert.equal(ok.code, 0, ok.stderr);

  // Other data: one more pair.
  const other = `${w.dir}/other.jsonl`;
  await Deno.writeTextFile(
    other,
    (await Deno.readTextFile(w.prefs)) +
      JSON.stringify({ prompt: "hello", chosen: " good", rejected: " bad" }) + "\n",
  );
  const otherData = await dpo([], other);
  assert.equal(otherData.code, 2);
  assert.match(otherData.stderr, /train split was built from other data/);
  assert.match(otherData.stderr, /deno task precompute/);

  // Another tokenizer: the same model with another chat template.
  const model2 = `${w.dir}/base2`;
  await Deno.mkdir(model2);
  for (const f of ["config.json", "model.safetensors", "tokenizer.json"]) {
    await Deno.copyFile(`${w.base}/${f}`, `${model2}/${f}`);
  }
  const config = JSON.parse(await Deno.readTextFile(`${w.base}/tokenizer_config.json`));
  config.chat_template = "{{ messages[0]['content'] }}";
  await Deno.writeTextFile(`${model2}/tokenizer_config.json`, JSON.stringify(config));
  const otherTokenizer = await dpo([], w.prefs, model2);
  assert.equal(otherTokenizer.code, 2);
  assert.match(otherTokenizer.stderr, /another tokenizer/);

  // A max length that changes the token ids.
  const shorter = await dpo(["--max-length", "5"]);
  assert.equal(shorter.code, 2);
  assert.match(shorter.stderr, /maxLength 1024, this run uses 5/);

  // One flipped byte in the payload.
  const bytes = await Deno.readFile(cache);
  bytes[bytes.length - 20] ^= 0x40;
  await Deno.writeFile(cache, bytes);
  const corrupt = await dpo([]);
  assert.equal(corrupt.code, 2);
  assert.match(corrupt.stderr, /checksum mismatch/);

  // The cache dump: one JSON line per example on stdout, the header on stderr.
  await run("precompute", [
    "--model",
    w.base,
    "--data",
    w.prefs,
    "--output",
    cache,
    "--device",
    "cpu",
  ]);
  const dump = await run("cache_dump", [cache]);
  assert.equal(dump.code, 0, dump.stderr);
  const lines = dump.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, 12);
  assert.deepEqual(Object.keys(lines[0]), [
    "index",
    "chosen_logp",
    "rejected_logp",
    "chosen_len",
    "rejected_len",
  ]);
  assert.equal(lines[11].index, 11);
  assert.match(dump.stderr, /reference_fingerprint/);
});
