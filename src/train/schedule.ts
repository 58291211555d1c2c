/**
 * Learning-rate schedules as Hugging Face transformers' `get_scheduler` builds them: a
 * `LambdaLR` whose k-th optimizer step (k from 0) uses `lr × λ(k)`. With no warmup the first step
 * uses the full rate (DESIGN.md, numerics contract).
 *
 * @module
 */

/** Schedule names, as HF's `lr_scheduler_type`. */
export type ScheduleName = "constant" | "linear" | "cosine" | "constant_with_warmup";

/** Options of {@link learningRate}. */
export interface ScheduleOptions {
  /** Peak learning rate. */
  lr: number;
  /** Shape after warmup. `constant` ignores warmup, as HF's `get_constant_schedule`. */
  schedule: ScheduleName;
  /** Linear warmup from 0 over this many steps; takes precedence over `warmupRatio`. @default 0 */
  warmupSteps?: number;
  /** Warmup as a fraction of `totalSteps` (HF: `ceil(ratio × total)`), used when `warmupSteps` is 0. @default 0 */
  warmupRatio?: number;
  /** Number of optimizer steps of the run (HF `num_training_steps`). */
  totalSteps: number;
}

/**
 * Warmup steps as HF's `TrainingArguments.get_warmup_steps`: `warmupSteps` when positive, else
 * `ceil(warmupRatio × totalSteps)`.
 */
export function warmupStepsOf(options: ScheduleOptions): number {
  const { warmupSteps = 0, warmupRatio = 0, totalSteps } = options;
  return warmupSteps > 0 ? warmupSteps : Math.ceil(warmupRatio * totalSteps);
}

/**
 * The multiplier λ(step) of HF's schedule lambdas (`transformers.optimization`):
 * - warmup (all but `constant`): `step / max(1, warmup)` while `step < warmup`;
 * - `linear`: `max(0, (total - step) / max(1, total - warmup))`;
 * - `cosine` (num_cycles 0.5): `max(0, 0.5 (1 + cos(π progress)))`,
 *   `progress = (step - warmup) / max(1, total - warmup)`;
 * - `constant`, `constant_with_warmup`: 1.
 */
export function scheduleFactor(step: number, options: ScheduleOptions): number {
  const { schedule, totalSteps } = options;
  if (schedule === "constant") return 1;
  const warmup = warmupStepsOf(options);
  if (step < warmup) return step / Math.max(1, warmup);
  switch (schedule) {
    case "constant_with_warmup":
      return 1;
    case "linear":
      return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmup));
    case "cosine": {
      const progress = (step - warmup) / Math.max(1, totalSteps - warmup);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress)));
    }
    default:
      throw new Error(
        `unknown learning-rate schedule "${schedule}"; use constant, linear, cosine or ` +
          `constant_with_warmup`,
      );
  }
}

/**
 * Learning rate of optimizer step `step` (0-based): `lr × λ(step)`.
 *
 * @example
 * ```ts
 * // linear decay with 2 warmup steps over 10 steps: 0, 0.5, 1, ..., 0.625 (step 5), 0.125 (step 9)
 * learningRate(5, { lr: 1e-3, schedule: "linear", warmupSteps: 2, totalSteps: 10 }); // 6.25e-4
 * ```
 */
export function learningRate(step: number, options: ScheduleOptions): number {
  return options.lr * scheduleFactor(step, options);
}
