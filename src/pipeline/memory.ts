/**
 * The memory plan of a run on its backend: the backend's allocation granularity and limits, and
 * the refusal of a run that cannot fit, raised before anything is allocated (exit code 2 on the
 * command line), with the numbers and the flags that would make it fit.
 *
 * @module
 */

import type { Backend } from "../backend/mod.ts";
import { CpuBackend } from "../cpu/backend.ts";
import { GpuBackend } from "../gpu/backend.ts";
import { rmsnormScratchElements } from "../gpu/kernels/rmsnorm.ts";
import {
  EXACT_GRANULARITY,
  type MemoryPlan,
  type PlanGranularity,
  type PlanInput,
  planMemory,
} from "../train/memory_plan.ts";
import {
  checkLimits,
  type FitOptions,
  fitSuggestions,
  formatBytes,
  type MemoryLimits,
} from "../train/memory_fit.ts";

/** A run the memory plan refuses: bad input (exit code 2), said before allocating. */
export class MemoryPlanError extends Error {
  readonly exitCode = 2;
  constructor(message: string, readonly plan: MemoryPlan) {
    super(message);
    this.name = "MemoryPlanError";
  }
}

/** How `backend` rounds allocations and what scratch its kernels add. */
export function granularityOf(backend: Backend): PlanGranularity {
  if (backend instanceof GpuBackend) {
    const { ctx } = backend;
    const maxPerDim = ctx.limits.maxComputeWorkgroupsPerDimension;
    return {
      alignment: ctx.alignment,
      minBytes: 4,
      floatBytes: 4,
      backwardScratch: (N, C) => rmsnormScratchElements(N, C, maxPerDim),
      ...(backend.ops.lmHeadPlan ? { lmHeadPlan: backend.ops.lmHeadPlan } : {}),
    };
  }
  if (backend instanceof CpuBackend && backend.precision === "f64") {
    return { ...EXACT_GRANULARITY, floatBytes: 8, widensHalf: true };
  }
  return { ...EXACT_GRANULARITY, widensHalf: true };
}

/** The adapter's buffer limits (none on the CPU) and `maxMemory`. */
export function limitsOf(backend: Backend, maxMemory?: number): MemoryLimits {
  if (backend instanceof GpuBackend) {
    const { limits } = backend.ctx;
    return {
      maxBufferSize: limits.maxBufferSize,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxMemory,
    };
  }
  return { maxMemory };
}

/** One line per role and limit, for people. */
export function describePlan(plan: MemoryPlan, limits: MemoryLimits): string[] {
  const lines = [
    `  parameters   ${formatBytes(plan.bytes.parameters)} (frozen ${
      formatBytes(plan.weights.frozen)
    }, trainable ${formatBytes(plan.weights.trainable)})`,
    ...(["gradients", "optimizer", "activations", "inputs"] as const).map((r) =>
      `  ${r.padEnd(12)} ${formatBytes(plan.bytes[r])}`
    ),
    `  total        ${formatBytes(plan.total)} (${
      formatBytes(plan.totalWithoutActivations)
    } without activations)`,
    `  largest tensor ${formatBytes(plan.largest.bytes)} (${plan.largest.name})`,
  ];
  for (const c of checkLimits(plan, limits)) {
    lines.push(
      `  ${c.fits ? "fits" : "EXCEEDS"} ${c.limit} ${formatBytes(c.bytes)}: ${c.what} ` +
        formatBytes(c.needed),
    );
  }
  return lines;
}

/**
 * Plans the run on `backend` and throws {@link MemoryPlanError} when it cannot fit the adapter's
 * limits or `maxMemory`; returns the plan otherwise.
 */
export function assertRunFits(
  backend: Backend,
  input: PlanInput,
  maxMemory: number | undefined,
  fit: FitOptions,
  what: string,
): MemoryPlan {
  const granularity = granularityOf(backend);
  const limits = limitsOf(backend, maxMemory);
  const plan = planMemory(input, granularity);
  if (checkLimits(plan, limits).every((c) => c.fits)) return plan;
  const suggestions = fitSuggestions(input, granularity, limits, fit);
  throw new MemoryPlanError(
    [
      `${what}: the run does not fit (${input.rows} rows of ${input.seqLen} tokens on ` +
      `${backend.adapterName}); nothing was allocated. Planned device memory:`,
      ...describePlan(plan, limits),
      suggestions.length
        ? `any of these would fit: ${
          suggestions.map((s) => `${s.flags} (${formatBytes(s.total)})`).join("; ")
        }`
        : "no single flag makes it fit: use a smaller model or a device with more memory",
    ].join("\n"),
    plan,
  );
}
