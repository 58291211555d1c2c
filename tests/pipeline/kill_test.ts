/**
 * SIGKILL regression suite (issue 14): a `dpo` or `precompute` process killed at a named point
 * (DPO_TEST_KILL_AT, src/io/kill_point.ts) or at a seeded random time, then rerun with
 * `--resume`, ends bit-identical (SHA-256 of the final weights or the cache) to an uninterrupted
 * run; a killed precompute leaves nothing at its output path; a run removes the temporary files a
 * killed run left; conflicting runs (two into one folder, another run's checkpoints, a leftover
 * manifest) are refused with exit 2 or cleared on request. CI runs the named points and a few
 * random kills; `deno task faults` (DPO_FAULTS=full) runs every named point and 20 random kills.
 */

import assert from "node:assert/strict";
import { seededRandom } from "../../src/data/sampler.ts";
import { sha256Hex } from "../../src/io/hash.ts";
import { makeTinyWorld, type TinyWorld } from "./tiny_world.ts";

const FULL = Deno.env.get("DPO_FAULTS") === "full";
const task = (name: string) => new URL(`../../tasks/${name}.ts`, import.meta.url).pathname;

interface Ended {
  code: number;
  signal: string | null;
  stderr: string;
}

function spawn(name: string, args: string[], killAt?: string) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-check", "-A", task(name), ...args, "--device", "cpu"],
    stdout: "null",
    stderr: "piped",
    env: { DPO_DEBUG: "", DPO_TEST_KILL_AT: killAt ?? "" },
  }).spawn();
}

async function run(name: string, args: string[], killAt?: string): Promise<Ended> {
  const out = await spawn(name, args, killAt).output();
  return { code: out.code, signal: out.signal, stderr: new TextDecoder().decode(out.stderr) };
}

const sha = async (path: string) => await sha256Hex(await Deno.readFile(path));

const dpoArgs = (w: TinyWorld, out: string, lr = "1e-3", ...more: string[]) => [
  ...["--model", w.base, "--data", w.prefs, "--ref-cache", `${w.dir}/ref.bin`],
  ...["--output-dir", out, "--max-steps", "8", "--save-steps", "2", "--logging-steps", "1"],
  ...["--batch-size", "4", "--learning-rate", lr, ...more],
];

function tempFiles(dir: string): string[] {
  const found: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (e.isDirectory) found.push(...tempFiles(`${dir}/${e.name}`));
    else if (/\.tmp$/.test(e.name)) found.push(`${dir}/${e.name}`);
  }
  return found;
}

/** The world, its cache and the uninterrupted run's final weights' SHA-256. */
async function baseline() {
  const w = await makeTinyWorld(24);
  const pre = await run("precompute", [
    ...["--model", w.base, "--data", w.prefs, "--output", `${w.dir}/ref.bin`],
  ]);
  assert.equal(pre.code, 0, pre.stderr);
  const whole = await run("dpo", dpoArgs(w, `${w.dir}/whole`));
  assert.equal(whole.code, 0, whole.stderr);
  return {
    w,
    cache: await sha(`${w.dir}/ref.bin`),
    model: await sha(`${w.dir}/whole/model.safetensors`),
  };
}

/** Kills a dpo run at `point`, resumes it, and checks the result is the uninterrupted one's. */
async function killAndResume(b: Awaited<ReturnType<typeof baseline>>, point: string, out: string) {
  const killed = await run("dpo", dpoArgs(b.w, out), point);
  assert.equal(
    killed.signal,
    "SIGKILL",
    `${point}: not killed (exit ${killed.code})\n${killed.stderr}`,
  );
  const resumed = await run("dpo", dpoArgs(b.w, out, "1e-3", "--resume"));
  assert.equal(resumed.code, 0, `${point}: resume failed\n${resumed.stderr}`);
  assert.equal(await sha(`${out}/model.safetensors`), b.model, `${point}: weights differ`);
  assert.deepEqual(tempFiles(out), [], `${point}: temporary files left`);
  return resumed.stderr;
}

const NAMED = [
  "train:after-step:3",
  "checkpoint:mid-write:2",
  "final:after-weights",
  "atomic:before-rename:4",
  ...(FULL ? ["train:after-step:1", "train:after-step:7", "checkpoint:mid-write:1"] : []),
  ...(FULL ? ["checkpoint:mid-write:3", "atomic:before-rename:1", "atomic:before-rename:9"] : []),
];

Deno.test("dpo killed at a named point and resumed ends bit-identical to an uninterrupted run", async () => {
  const b = await baseline();
  await using _w = b.w;
  for (const [i, point] of NAMED.entries()) {
    const log = await killAndResume(b, point, `${b.w.dir}/k${i}`);
    if (point.startsWith("atomic")) assert.match(log, /removed \d+ temporary file/, log);
  }
  // Seeded random-time kills: anywhere from start-up to the end of the run.
  const rand = seededRandom(14);
  for (let i = 0; i < (FULL ? 20 : 2); i++) {
    const out = `${b.w.dir}/r${i}`;
    const child = spawn("dpo", dpoArgs(b.w, out));
    const delay = Math.floor(rand() * 2500);
    const timer = setTimeout(() => child.kill("SIGKILL"), delay);
    await child.output();
    clearTimeout(timer);
    const resumed = await run("dpo", dpoArgs(b.w, out, "1e-3", "--resume"));
    assert.equal(resumed.code, 0, `random kill at ${delay} ms: ${resumed.stderr}`);
    assert.equal(await sha(`${out}/model.safetensors`), b.model, `random kill at ${delay} ms`);
    assert.deepEqual(tempFiles(out), []);
  }
});

Deno.test("a killed precompute leaves nothing at its output path, and its rerun is identical", async () => {
  const b = await baseline();
  await using _w = b.w;
  for (const point of ["precompute:mid-cache", "atomic:before-rename:1"]) {
    const output = `${b.w.dir}/again.bin`;
    const args = ["--model", b.w.base, "--data", b.w.prefs, "--output", output];
    const killed = await run("precompute", args, point);
    assert.equal(killed.signal, "SIGKILL", `${point}: ${killed.stderr}`);
    assert.equal(await Deno.stat(output).then(() => true, () => false), false, point);
    const again = await run("precompute", args);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await sha(output), b.cache, point);
    assert.deepEqual(tempFiles(b.w.dir).filter((f) => f.includes("again.bin")), [], point);
    await Deno.remove(output);
  }
});

Deno.test("conflicting runs: a live run's folder, another run's checkpoints, a leftover manifest", async () => {
  const b = await baseline();
  await using _w = b.w;
  const w = b.w;
  // Two runs into one folder: while A holds it (a long run, seen by its lock), B is refused.
  const shared = `${w.dir}/shared`;
  const a = spawn("dpo", dpoArgs(w, shared, "1e-3", "--max-steps", "100000"));
  const deadline = Date.now() + 60_000;
  while (!await Deno.stat(`${shared}/.lock`).then(() => true, () => false)) {
    if (Date.now() > deadline) {
      a.kill("SIGKILL");
      await a.output();
      throw new Error("run A never took its lock");
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const second = await run("dpo", dpoArgs(w, shared));
  a.kill("SIGKILL");
  await a.output();
  assert.equal(second.code, 2, second.stderr);
  assert.match(second.stderr, /in use by another run \(pid \d+/);
  // A is dead: its stale lock is taken over, but its outputs are another run's (other options).
  const afterDead = await run("dpo", dpoArgs(w, shared));
  assert.equal(afterDead.code, 2, afterDead.stderr);
  assert.match(afterDead.stderr, /another run's outputs.*--overwrite-output-dir/);

  // Run A completes into D; run B (another learning rate) is refused, then overwrites, is killed
  // after step 6 (before its checkpoint-6) and resumes from its own checkpoint-4 only, ending as an uninterrupted B.
  const d = `${w.dir}/d`;
  assert.equal((await run("dpo", dpoArgs(w, d))).code, 0);
  const refused = await run("dpo", dpoArgs(w, d, "5e-4"));
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /another run's outputs/);
  const bWhole = await run("dpo", dpoArgs(w, `${w.dir}/b-whole`, "5e-4"));
  assert.equal(bWhole.code, 0, bWhole.stderr);
  const killed = await run(
    "dpo",
    dpoArgs(w, d, "5e-4", "--overwrite-output-dir"),
    "train:after-step:6",
  );
  assert.equal(killed.signal, "SIGKILL");
  const resumed = await run("dpo", dpoArgs(w, d, "5e-4", "--resume"));
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resumed from .*checkpoint-4 at step 4/);
  const bModel = await sha(`${w.dir}/b-whole/model.safetensors`);
  assert.equal(await sha(`${d}/model.safetensors`), bModel);

  // A leftover manifest: B killed just after writing its final weights; A's command is not
  // "up to date" over B's weights: refused, and with --overwrite-output-dir it retrains as A.
  const e = `${w.dir}/e`;
  const bKilled = await run("dpo", dpoArgs(w, e, "5e-4"), "final:after-weights");
  assert.equal(bKilled.signal, "SIGKILL");
  const aAgain = await run("dpo", dpoArgs(w, e));
  assert.equal(aAgain.code, 2, aAgain.stderr);
  assert.doesNotMatch(aAgain.stderr, /up to date/);
  const aOver = await run("dpo", dpoArgs(w, e, "1e-3", "--overwrite-output-dir"));
  assert.equal(aOver.code, 0, aOver.stderr);
  assert.equal(await sha(`${e}/model.safetensors`), b.model);
});
