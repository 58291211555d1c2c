/**
 * First contact: a new machine's first run prints only lines about the run. A stage on the
 * embedded default runs through `deno task`, as the README says, with a fresh Deno cache
 * (`DENO_DIR` in a temporary folder, so every npm package is downloaded and installed as on a
 * new machine) and `XDG_RUNTIME_DIR` unset (a server or CI runner without a desktop session);
 * every line of its stderr must be one the project or Deno's own download progress prints: no
 * warning box about skipped install scripts, no Vulkan driver noise.
 *
 * The fresh cache needs the npm registry (28 MB downloaded, 146 MB on disk, some 15 s here).
 * Without it the test says why it skips, and fails instead when `CI` is set. The lockfile check
 * below needs nothing and catches the cause of the warning box before any download.
 */

import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, "g");
const stripAnsi = (s: string) => s.replace(ANSI, "");

/** The lines a first run of `deno task sft` may print: Deno's task echo and downloads, ours. */
const OWN_LINES = [
  /^Task sft deno run /, // deno task: the command it runs
  /^Download https:\/\/registry\.npmjs\.org\//, // Deno, on a fresh cache: what it fetches
  /^device: webgpu \(.+\)$/,
  /^warning: no WebGPU adapter found; running on the CPU reference backend/, // no adapter
  /^device: cpu \(.+\)$/,
  /^sft: train data data\/sft\.jsonl: read 1000, kept 1000, dropped 0, truncated 0$/,
  /^sft [█░]{24} \d+\/2 \d+\.\ds/, // the progress bar
  /^sft took \d+\.\d s$/,
];

Deno.test("no locked npm package has install scripts (Deno's 'Ignored build scripts' box)", async () => {
  const lock = JSON.parse(await Deno.readTextFile(`${ROOT}deno.lock`));
  const withScripts = Object.entries(lock.npm ?? {})
    .filter(([, entry]) => (entry as { scripts?: boolean }).scripts === true)
    .map(([name]) => name);
  assert.deepEqual(
    withScripts,
    [],
    `these packages have install scripts, which Deno skips with a warning box on every new ` +
      `machine: ${withScripts.join(", ")}; import a narrower package instead`,
  );
});

async function registryReachable(): Promise<boolean> {
  try {
    const response = await fetch("https://registry.npmjs.org/-/ping", {
      signal: AbortSignal.timeout(5000),
    });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

Deno.test({
  name: "a first run on a fresh Deno cache without XDG_RUNTIME_DIR prints only its own lines",
  sanitizeResources: false,
  fn: async () => {
    if (!await registryReachable()) {
      const why = "the npm registry cannot be reached, so a fresh Deno cache cannot be filled";
      if (Deno.env.get("CI")) throw new Error(`${why} (CI is set)`);
      console.warn(`skipping: ${why}`);
      return;
    }
    const tmp = await Deno.makeTempDir({ prefix: "dpo-first-run-" });
    try {
      const env = { ...Deno.env.toObject(), DENO_DIR: `${tmp}/deno`, TMPDIR: tmp, NO_COLOR: "1" };
      delete (env as Record<string, string>).XDG_RUNTIME_DIR;
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "task",
          "sft",
          "--model",
          "data/base",
          "--data",
          "data/sft.jsonl",
          "--max-steps",
          "2",
          "--output-dir",
          `${tmp}/sft`,
        ],
        cwd: ROOT,
        env,
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = stripAnsi(new TextDecoder().decode(out.stderr));
      assert.equal(out.code, 0, stderr);
      const lines = stderr.split(/\r?\n|\r/).map((l) => l.trim()).filter((l) => l !== "");
      assert.ok(
        lines.some((l) => l.startsWith("Download ")),
        "the cache was fresh: packages were downloaded",
      );
      assert.doesNotMatch(stderr, /warning(?!: no WebGPU adapter)/i);
      assert.doesNotMatch(stderr, /XDG_RUNTIME_DIR|build scripts|lifecycle/i);
      const foreign = lines.filter((l) => !OWN_LINES.some((own) => own.test(l)));
      assert.deepEqual(foreign, [], `lines that are not the run's own:\n${foreign.join("\n")}`);
      assert.ok(lines.some((l) => /^sft took /.test(l)), "the stage ran");
      // The driver was given a private runtime folder of the user's own, in TMPDIR.
      const runtime = await Deno.stat(`${tmp}/dpo-webgpu-runtime-${Deno.uid()}`);
      assert.ok(runtime.isDirectory);
      assert.equal((runtime.mode ?? 0) & 0o077, 0, "the runtime folder is private");
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
