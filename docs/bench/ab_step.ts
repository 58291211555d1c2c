/**
 * One bench row's DPO step timed in two or more checkouts, alternately (A B A B ...), each
 * measurement in a fresh process, so that this machine's load (which moves absolute timings 2-6×)
 * falls on every side alike; prints each side's median seconds per step and its ratio to the first.
 * Issue 11's llvmpipe target ("the 3.4M step at least as fast as on the commit before this work,
 * both measured in the same run") is measured with it:
 *
 *   git worktree add /tmp/base b6fd1d3
 *   deno run -A --unstable-webgpu docs/bench/ab_step.ts --rounds 3 --steps 3 /tmp/base .
 *
 * `--row` picks the row of STEP_BENCH_CONFIGS by its name's start (default `3.4M`).
 *
 * @module
 */

import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "3" },
    steps: { type: "string", default: "3" },
    row: { type: "string", default: "3.4M" },
    child: { type: "boolean", default: false },
  },
  allowPositionals: true,
});

if (values.child) {
  const root = await Deno.realPath(positionals[0]);
  const { GpuBackend } = await import(`file://${root}/src/gpu/backend.ts`);
  const { benchStep, STEP_BENCH_CONFIGS } = await import(`file://${root}/src/train/bench.ts`);
  const config = STEP_BENCH_CONFIGS.find((c: { name: string }) => c.name.startsWith(values.row));
  if (!config) throw new Error(`no bench row named ${values.row}... in ${root}`);
  const backend = await GpuBackend.create();
  const r = await benchStep(backend, config, { steps: Number(values.steps), liveReference: false });
  backend.destroy();
  console.log(JSON.stringify({ seconds_per_step: r.seconds_per_step }));
} else {
  if (positionals.length < 2) {
    console.error("usage: ab_step.ts [--rounds N] [--steps N] [--row NAME] CHECKOUT_A CHECKOUT_B ...");
    Deno.exit(2);
  }
  const times: number[][] = positionals.map(() => []);
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const [i, dir] of positionals.entries()) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--unstable-webgpu",
          new URL(import.meta.url).pathname,
          "--child",
          "--steps",
          values.steps!,
          "--row",
          values.row!,
          dir,
        ],
        cwd: dir,
        stderr: "inherit",
      }).output();
      const line = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
      if (!out.success) throw new Error(`${dir}: the step failed (exit ${out.code})`);
      const s = JSON.parse(line).seconds_per_step as number;
      times[i].push(s);
      console.error(`round ${round + 1} ${dir}: ${s.toFixed(3)} s/step`);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const base = median(times[0]);
  const rows = positionals.map((dir, i) => ({
    checkout: dir,
    seconds_per_step: times[i],
    median: median(times[i]),
    speed_vs_first: base / median(times[i]),
  }));
  console.log(JSON.stringify({ row: values.row, steps: Number(values.steps), rows }, null, 2));
}
