/**
 * docs/bench/gpu_prepare.sh and gpu_session.sh (the one-shot GPU session of issue 11): both parse
 * as bash, and the session writes at most 8 files under $OUT, flat, with names the device tool
 * brings back (letters, digits, '.', '_', '-'). The whole session is dry-run on llvmpipe with
 * GPU_SESSION_DRY=1 (docs/bench/README.md), which is too slow for the suite.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";

const BENCH = new URL("../../docs/bench/", import.meta.url).pathname;

for (const script of ["gpu_prepare.sh", "gpu_session.sh"]) {
  Deno.test(`docs/bench/${script} parses as bash`, async () => {
    const out = await new Deno.Command("bash", { args: ["-n", `${BENCH}${script}`] }).output();
    strictEqual(out.code, 0, new TextDecoder().decode(out.stderr));
  });
}

Deno.test("gpu_session.sh writes at most 8 flat, plainly named files under $OUT", async () => {
  const text = await Deno.readTextFile(`${BENCH}gpu_session.sh`);
  const names = new Set([...text.matchAll(/"\$OUT\/([^"]*)"/g)].map((m) => m[1]));
  // tests-$m.log is the auto and hardware logs.
  names.delete("tests-$m.log");
  ok(names.has("tests-auto.log") && names.has("tests-hardware.log"));
  for (const name of names) ok(/^[A-Za-z0-9._-]+$/.test(name), `not a flat plain name: ${name}`);
  deepStrictEqual([...names].sort(), [
    "bench-extra.json",
    "bench.json",
    "pytorch.json",
    "session.log",
    "tests-auto.log",
    "tests-hardware.log",
    "tune.json",
    "tuning.json",
  ]);
});
