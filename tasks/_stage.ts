/** What the stage tasks share: the backend, the file store, progress bars and metric lines. */

import { createBackend, type DeviceChoice } from "../src/pipeline/device.ts";
import type { Backend } from "../src/backend/mod.ts";
import { DenoFileStore } from "../src/io/deno_fs.ts";
import type { StageHooks } from "../src/pipeline/stage.ts";
import { Progress } from "./_cli.ts";
import { kernelOptions } from "./_kernels.ts";

/** The Deno file store. */
export const store = new DenoFileStore();

/**
 * Opens the backend of `--device` with the kernel flags' layouts and tuner (tasks/_kernels.ts),
 * telling which adapter runs.
 */
export async function openBackend(
  device: DeviceChoice,
  flags: Record<string, unknown> = {},
): Promise<Backend> {
  const backend = await createBackend(device, {
    gpu: device === "cpu" ? undefined : await kernelOptions(flags),
  });
  console.error(`device: ${backend.kind} (${backend.adapterName})`);
  return backend;
}

const fmt = (v: number) => Math.abs(v) >= 100 || v === 0 ? v.toFixed(1) : v.toPrecision(4);

/** Hooks that draw a progress bar on stderr and print logged metrics. */
export function stageHooks(label: string, keys: string[]): StageHooks & { finish(): void } {
  let bar: Progress | undefined;
  let scoring: Progress | undefined;
  let scoringDone = 0;
  let last = "";
  return {
    log: (message) => {
      bar?.interrupt();
      console.error(`${label}: ${message}`);
    },
    onStep: (step, total) => {
      bar ??= new Progress(label, total);
      bar.update(step, last);
    },
    onLog: (row) => {
      const shown = Object.entries(row).filter(([k]) =>
        keys.includes(k) || keys.includes(k.replace(/^eval_/, ""))
      );
      const text = shown.map(([k, v]) => `${k} ${fmt(v)}`).join("  ");
      if (Object.keys(row).some((k) => k.startsWith("eval_"))) {
        // An eval row gets its own line under the bar, which keeps the training metrics.
        bar?.interrupt();
        console.error(`${label} eval: ${text}`);
      } else {
        last = text;
        // The step's own metrics, at once: the bar was drawn before they were read.
        if (bar && typeof row.step === "number") bar.update(row.step, last, true);
      }
    },
    onProgress: (done, total) => {
      // A new bar for each pass (its total changes, or it starts over).
      if (!scoring || scoring.total !== total || done < scoringDone) {
        scoring = new Progress(`${label} scoring`, total);
      }
      scoringDone = done;
      scoring.update(done);
      if (done === total) scoring.done();
    },
    finish: () => bar?.done(last),
  };
}

/**
 * Runs a stage and says what it did, in order: when it ran, its progress bar ends and then
 * "<label> took N s"; when its outputs were up to date, only "<what> is up to date: skipped"
 * (with how to redo it), since nothing was written.
 */
export async function runStage<T extends { skipped: boolean }>(
  label: string,
  what: string,
  hooks: { finish(): void },
  fn: () => Promise<T>,
  redo = "--force redoes it",
): Promise<T> {
  const start = performance.now();
  const result = await fn();
  if (result.skipped) {
    console.error(`${what} is up to date: skipped${redo ? ` (${redo})` : ""}`);
  } else {
    hooks.finish();
    console.error(`${label} took ${((performance.now() - start) / 1000).toFixed(1)} s`);
  }
  return result;
}

/** Runs `fn` and prints how long it took. */
export async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  const result = await fn();
  console.error(`${label} took ${((performance.now() - start) / 1000).toFixed(1)} s`);
  return result;
}
