/**
 * Learning-rate schedules against values computed by hand from HF transformers' lambdas
 * (`get_linear_schedule_with_warmup`, `get_cosine_schedule_with_warmup`, ...).
 */

import assert from "node:assert/strict";
import {
  learningRate,
  scheduleFactor,
  type ScheduleOptions,
  warmupStepsOf,
} from "../../src/train/schedule.ts";
import { assertClose } from "../helpers.ts";

const factors = (steps: number[], options: ScheduleOptions) =>
  steps.map((k) => scheduleFactor(k, options));

Deno.test("linear with 2 warmup steps over 10 steps follows HF's lambda", () => {
  const options: ScheduleOptions = { lr: 2e-3, schedule: "linear", warmupSteps: 2, totalSteps: 10 };
  const steps = [0, 1, 2, 5, 9, 10, 12];
  assertClose(factors(steps, options), [0, 0.5, 1, 0.625, 0.125, 0, 0], { atol: 1e-15, rtol: 0 });
  assertClose(steps.map((k) => learningRate(k, options)), [0, 1e-3, 2e-3, 1.25e-3, 2.5e-4, 0, 0], {
    atol: 1e-18,
    rtol: 1e-15,
  });
});

Deno.test("linear without warmup uses the full rate at the first step", () => {
  const options: ScheduleOptions = { lr: 1, schedule: "linear", totalSteps: 4 };
  assert.deepEqual(factors([0, 1, 3, 4], options), [1, 0.75, 0.25, 0]);
});

Deno.test("cosine with warmup follows HF's half cycle", () => {
  const options: ScheduleOptions = { lr: 1, schedule: "cosine", warmupSteps: 2, totalSteps: 10 };
  // step 4: progress 0.25 -> 0.5 (1 + cos(pi/4)); step 6: progress 0.5 -> 0.5.
  assertClose(factors([0, 1, 2, 4, 6, 10, 11], options), [
    0,
    0.5,
    1,
    0.8535533905932737,
    0.5,
    0,
    0.038060233744356575, // past the end: 0.5 (1 + cos(1.125 pi)), as HF (it only clamps below 0)
  ], { atol: 1e-15, rtol: 0 });
});

Deno.test("constant_with_warmup ramps then stays; constant ignores warmup", () => {
  assert.deepEqual(
    factors([0, 1, 4, 100], {
      lr: 1,
      schedule: "constant_with_warmup",
      warmupSteps: 4,
      totalSteps: 10,
    }),
    [0, 0.25, 1, 1],
  );
  assert.deepEqual(
    factors([0, 3, 50], { lr: 1, schedule: "constant", warmupSteps: 5, totalSteps: 10 }),
    [1, 1, 1],
  );
});

Deno.test("warmupRatio gives ceil(ratio × total) steps and warmupSteps takes precedence", () => {
  const base = { lr: 1, schedule: "linear" as const, totalSteps: 25 };
  assert.equal(warmupStepsOf({ ...base, warmupRatio: 0.1 }), 3);
  assert.equal(warmupStepsOf({ ...base, warmupRatio: 0.1, warmupSteps: 5 }), 5);
  assert.equal(warmupStepsOf({ ...base, totalSteps: 30, warmupRatio: 0.05 }), 2);
  assertClose(factors([1, 3, 25], { ...base, warmupRatio: 0.1 }), [1 / 3, 1, 0], {
    atol: 1e-15,
    rtol: 0,
  });
});

Deno.test("an unknown schedule name is an error that lists the valid ones", () => {
  assert.throws(
    () => scheduleFactor(0, { lr: 1, schedule: "polynomial" as "linear", totalSteps: 10 }),
    /use constant, linear, cosine or constant_with_warmup/,
  );
});
