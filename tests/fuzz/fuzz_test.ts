/**
 * Fuzz suite (issue 14): valid files of each kind mutated by seed, each loaded as a command
 * would; every case must end in a correct load or a clear refusal (an input error naming the
 * file: exit 2 on the command line), never a crash, a hang (a case over HANG_MS is ended and
 * counted) or an out-of-memory. CI runs seeds 0..99 of every kind; `deno task fuzz`
 * (DPO_FUZZ=full) runs DPO_FUZZ_CASES (default 500) per kind and prints the README's table. A small sample
 * also goes through the command line, checking the exit code and that no stack trace is printed.
 */

import assert from "node:assert/strict";
import { KINDS, seedFiles } from "./kinds.ts";
import { MemoryFileStore } from "../../src/io/memory_fs.ts";
import { mutate } from "./mutate.ts";

const FULL = Deno.env.get("DPO_FUZZ") === "full";
const CASES = FULL ? Number(Deno.env.get("DPO_FUZZ_CASES") ?? 500) : 100;
const HANG_MS = 10_000;

interface CaseResult {
  seed: number;
  outcome: string;
  message: string;
  ms: number;
}

/** Runs seeds [0, cases) of `kind` in workers; a case that hangs is ended and recorded. */
async function fuzzKind(kind: string, cases: number): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  let next = 0;
  while (next < cases) {
    const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
    const from = next;
    const ended = await new Promise<"done" | "hang" | "error">((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const arm = (ms: number) => {
        clearTimeout(timer);
        timer = setTimeout(() => resolve("hang"), ms);
      };
      arm(60_000); // the worker's start-up (seed files, a precompute)
      worker.onmessage = (e) => {
        if (e.data.ready) worker.postMessage({ kind, from, to: cases });
        else if (e.data.done) {
          clearTimeout(timer);
          resolve("done");
          return;
        } else {
          results.push(e.data);
          next = e.data.seed + 1;
        }
        arm(HANG_MS);
      };
      worker.onerror = (e) => {
        e.preventDefault();
        clearTimeout(timer);
        results.push({ seed: next, outcome: "crash", message: `worker: ${e.message}`, ms: 0 });
        next++;
        resolve("error");
      };
    });
    worker.terminate();
    if (ended === "hang") {
      results.push({ seed: next, outcome: "hang", message: `over ${HANG_MS} ms`, ms: HANG_MS });
      next++;
    }
  }
  return results;
}

const table: Record<string, Record<string, number>> = {};

Deno.test("every unmutated seed file loads (so a refusal below is the mutation's doing)", async () => {
  const files = await seedFiles();
  for (const kind of KINDS) await kind.load(new MemoryFileStore(files));
});

for (const kind of KINDS) {
  Deno.test(`fuzz ${kind.name}: ${CASES} seeded mutants load correctly or are refused clearly`, async () => {
    const results = await fuzzKind(kind.name, CASES);
    const counts: Record<string, number> = { loaded: 0, refused: 0, unclear: 0, crash: 0, hang: 0 };
    for (const r of results) counts[r.outcome]++;
    const slowest = Math.max(...results.map((r) => r.ms));
    table[kind.name] = { cases: results.length, ...counts, slowest_ms: Math.round(slowest) };
    const bad = results.filter((r) => !["loaded", "refused"].includes(r.outcome));
    assert.equal(results.length, CASES);
    assert.deepEqual(
      bad.slice(0, 5).map((r) => `seed ${r.seed}: ${r.outcome}: ${r.message}`),
      [],
      `${bad.length} of ${CASES} ${kind.name} mutants ended badly`,
    );
  });
}

Deno.test("fuzzed model files through the command line end in exit 0 or 2, no stack trace", async () => {
  const files = await seedFiles();
  const dir = await Deno.makeTempDir({ prefix: "dpo-fuzz-" });
  try {
    const targets = ["m/config.json", "m/model.safetensors", "d/prefs.jsonl"];
    const seeds = FULL ? 12 : 1;
    for (const [i, target] of targets.entries()) {
      for (let seed = 0; seed < seeds; seed++) {
        for (const [path, bytes] of Object.entries(files)) {
          await Deno.mkdir(`${dir}/${path.slice(0, path.lastIndexOf("/"))}`, { recursive: true });
          await Deno.writeFile(`${dir}/${path}`, bytes);
        }
        const shape = target.endsWith(".safetensors") ? "safetensors" : "json";
        await Deno.writeFile(`${dir}/${target}`, mutate(files[target], shape, seed + 1000 * i));
        const out = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--no-check",
            "-A",
            new URL("../../tasks/precompute.ts", import.meta.url).pathname,
          ]
            .concat(["--model", `${dir}/m`, "--data", `${dir}/d/prefs.jsonl`])
            .concat(["--output", `${dir}/out-${i}-${seed}.bin`, "--device", "cpu"]),
          stdout: "null",
          stderr: "piped",
          env: { DPO_DEBUG: "" },
        }).output();
        const stderr = new TextDecoder().decode(out.stderr);
        assert.ok([0, 2].includes(out.code), `${target} seed ${seed}: exit ${out.code}\n${stderr}`);
        assert.doesNotMatch(stderr, /^\s+at /m, `${target} seed ${seed}: a stack trace`);
        if (out.code === 2) assert.match(stderr, /^error: /m);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fuzz table", () => {
  console.log(JSON.stringify(table));
  const report = Deno.env.get("DPO_FUZZ_REPORT");
  if (report) Deno.writeTextFileSync(report, JSON.stringify(table, null, 1) + "\n");
});
