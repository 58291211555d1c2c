/**
 * Named kill points for the fault tests: places where a test may have the process killed
 * (SIGKILL) to prove that a rerun or `--resume` ends bit-identical to an uninterrupted run. The
 * library only names the points; a Deno entry point installs the handler when the test's
 * environment variable `DPO_TEST_KILL_AT` is set (see tasks/_cli.ts). Unset, a point costs one
 * comparison with undefined.
 *
 * Points: `train:after-step` (an optimizer step done), `checkpoint:mid-write` (a checkpoint's
 * weights written, its optimizer state and trainer_state.json not yet), `final:after-weights`
 * (the final weights written, metrics and manifest not yet), `precompute:mid-cache` (half the
 * pairs scored), `atomic:before-rename` (a temporary file written, not yet renamed).
 *
 * @module
 */

/** Called at every named point; set only in tests. */
let handler: ((point: string) => void) | undefined;

/** Installs (or with undefined removes) the handler every {@link killPoint} calls. */
export function setKillPointHandler(h: ((point: string) => void) | undefined): void {
  handler = h;
}

/** Marks the named point; does nothing unless a test installed a handler. */
export function killPoint(point: string): void {
  if (handler !== undefined) handler(point);
}

/**
 * A handler for `spec` = `point` or `point:n` (the n-th time the point is reached, default 1):
 * it calls `kill` there. Refuses a spec that names no known point (a typo would kill nothing).
 */
export function killPointHandler(spec: string, kill: () => void): (point: string) => void {
  const match = /^([a-z]+:[a-z-]+)(?::(\d+))?$/.exec(spec);
  if (!match || !KILL_POINTS.includes(match[1])) {
    throw new Error(
      `DPO_TEST_KILL_AT=${spec}: expected one of ${KILL_POINTS.join(", ")}, optionally with :N`,
    );
  }
  const [, name, nth] = match;
  let left = Number(nth ?? 1);
  return (point) => {
    if (point === name && --left === 0) kill();
  };
}

/** Every named point the library marks. */
export const KILL_POINTS: readonly string[] = [
  "train:after-step",
  "checkpoint:mid-write",
  "final:after-weights",
  "precompute:mid-cache",
  "atomic:before-rename",
];
