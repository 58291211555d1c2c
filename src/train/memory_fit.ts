/**
 * Whether a {@link MemoryPlan} fits: its total against `--max-memory`, its largest single tensor
 * against the adapter's `maxBufferSize` (an arena spans several buffers, a tensor lies in one; a
 * tensor larger than one binding is bound in pieces); and, for a plan that
 * does not fit, the flags that would make it fit (a smaller batch, LoRA, gradient checkpointing,
 * a shorter maximum length), each checked by planning again.
 *
 * @module
 */

import {
  type MemoryPlan,
  type PlanGranularity,
  type PlanInput,
  planMemory,
} from "./memory_plan.ts";

/** What a plan is held against. */
export interface MemoryLimits {
  /** The adapter's `maxBufferSize` (bytes); absent on the CPU. */
  maxBufferSize?: number;
  /** The adapter's `maxStorageBufferBindingSize` (bytes); absent on the CPU. */
  maxStorageBufferBindingSize?: number;
  /** `--max-memory`: the most device bytes the run may hold. */
  maxMemory?: number;
}

/** One limit a plan is checked against. */
export interface LimitCheck {
  /** `maxBufferSize`, `maxStorageBufferBindingSize` or `max-memory`. */
  limit: string;
  /** The limit in bytes. */
  bytes: number;
  /** What is held against it: the largest single tensor or the total. */
  needed: number;
  /** Name of the tensor held against it (`arena: tensor` in an arena; the total for max-memory). */
  what: string;
  fits: boolean;
}

/** Checks `plan` against each limit given. */
export function checkLimits(plan: MemoryPlan, limits: MemoryLimits): LimitCheck[] {
  const checks: LimitCheck[] = [];
  // A tensor larger than the largest storage binding is split across bindings (src/gpu/split.ts)
  // and an arena larger than the largest buffer across buffers (src/model/params.ts), so only a
  // single tensor larger than one buffer can refuse a run.
  for (const limit of ["maxBufferSize"] as const) {
    const bytes = limits[limit];
    if (bytes === undefined) continue;
    const needed = plan.largest.bytes;
    checks.push({ limit, bytes, needed, what: plan.largest.name, fits: needed <= bytes });
  }
  if (limits.maxMemory !== undefined) {
    checks.push({
      limit: "max-memory",
      bytes: limits.maxMemory,
      needed: plan.total,
      what: "total",
      fits: plan.total <= limits.maxMemory,
    });
  }
  return checks;
}

/** True when every check passes. */
export function planFits(plan: MemoryPlan, limits: MemoryLimits): boolean {
  return checkLimits(plan, limits).every((c) => c.fits);
}

/** Which of the memory-saving flags a task takes. */
export interface FitOptions {
  /** Examples of the batch flag per device row: 2 for pairs (DPO, precompute), else 1. */
  rowsPerExample: number;
  /** The batch flag's name. @default "--per-device-train-batch-size" */
  batchFlag?: string;
  /** The task takes `--use-peft`. */
  usePeft?: boolean;
  /** The task takes `--gradient-checkpointing`. */
  gradientCheckpointing?: boolean;
}

/** A change of flags that makes the plan fit, with its planned total. */
export interface FitSuggestion {
  flags: string;
  total: number;
}

/** The flags, each alone, that would make a plan that does not fit fit. */
export function fitSuggestions(
  input: PlanInput,
  granularity: PlanGranularity,
  limits: MemoryLimits,
  options: FitOptions,
): FitSuggestion[] {
  const out: FitSuggestion[] = [];
  const tryPlan = (flags: string, changed: PlanInput) => {
    const plan = planMemory(changed, granularity);
    if (planFits(plan, limits)) {
      out.push({ flags, total: plan.total });
      return true;
    }
    return false;
  };
  const examples = input.rows / options.rowsPerExample;
  for (let n = examples - 1; n >= 1; n--) {
    const flag = options.batchFlag ?? "--per-device-train-batch-size";
    const accumulate = input.train && examples % n === 0 && examples / n > 1
      ? ` --gradient-accumulation-steps ${examples / n} (times the current, for the same batch)`
      : "";
    if (tryPlan(`${flag} ${n}${accumulate}`, { ...input, rows: n * options.rowsPerExample })) break;
  }
  if (input.train && options.usePeft && !input.lora) {
    const lora = { r: 16, targetModules: ["q_proj", "k_proj", "v_proj", "o_proj"], dropout: 0.05 };
    tryPlan("--use-peft", { ...input, lora });
  }
  if (input.train && options.gradientCheckpointing && !input.gradientCheckpointing) {
    tryPlan("--gradient-checkpointing", { ...input, gradientCheckpointing: true });
  }
  // The longest --max-length that fits, in steps of 64 tokens.
  for (let t = Math.floor((input.seqLen - 1) / 64) * 64; t >= 64; t -= 64) {
    if (tryPlan(`--max-length ${t}`, { ...input, seqLen: t })) break;
  }
  return out;
}

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/**
 * Parses a byte count: a number with an optional unit (`B`, `KB`..`TB` decimal, `KiB`..`TiB`
 * binary), e.g. `8GiB`, `512 MiB`, `1e9`.
 * @throws RangeError saying what was expected.
 */
export function parseBytes(text: string): number {
  const m = /^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined || !(Number(m[1]) > 0)) {
    throw new RangeError(
      `"${text}" is not a byte count: give a positive number with an optional unit, e.g. 8GiB, ` +
        "512MiB, 16GB or 1000000",
    );
  }
  return Math.floor(Number(m[1]) * unit);
}

/** A byte count for people: MiB below 1 GiB, else GiB, two decimals. */
export function formatBytes(bytes: number): string {
  return bytes < 2 ** 30
    ? `${(bytes / 2 ** 20).toFixed(2)} MiB`
    : `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}
