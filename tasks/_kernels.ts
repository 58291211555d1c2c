/**
 * The kernel-layout flags every task that opens a GPU context takes: `--kernel-layouts`
 * (environment DPO_KERNEL_LAYOUTS), `--no-tune`, `--tuning-cache PATH` (environment
 * DPO_TUNING_CACHE; default $XDG_CACHE_HOME or ~/.cache, then dpo-webgpu/tuning.json). A flag
 * given wins over the environment, the environment over the default.
 */

import type { FlagSpec } from "./_cli.ts";
import { UsageError } from "./_cli.ts";
import type { GpuContextOptions, KernelLayouts } from "../src/gpu/context.ts";
import { LAYOUTS_ENV } from "../src/gpu/matmul_policy.ts";
import { Tuner, type TuningStore } from "../src/gpu/tuner.ts";

/** Environment variable naming the tuning cache file. */
export const TUNING_CACHE_ENV = "DPO_TUNING_CACHE";

/** The flags. */
export const KERNEL_FLAGS: Record<string, FlagSpec> = {
  "kernel-layouts": {
    type: "string",
    default: "",
    help: `hardware|software|auto: force the kernel layouts on any adapter (env ${LAYOUTS_ENV}; ` +
      "default auto: software layouts on software adapters)",
  },
  "no-tune": {
    type: "boolean",
    default: false,
    help: "use the built-in hardware kernel choice instead of measuring (tuning) on a new adapter",
  },
  "tuning-cache": {
    type: "string",
    default: "",
    help: `tuning cache JSON (env ${TUNING_CACHE_ENV}; default ~/.cache/dpo-webgpu/tuning.json)`,
  },
};

type Flags = Record<string, unknown>;

/** The layouts of the flag, else of the environment, else auto; bad values exit 2. */
export function layoutsOf(flags: Flags, env = Deno.env.toObject()): KernelLayouts {
  const flag = String(flags.kernelLayouts ?? "");
  const value = flag || env[LAYOUTS_ENV] || "auto";
  if (!["hardware", "software", "auto"].includes(value)) {
    const where = flag ? "--kernel-layouts" : `environment variable ${LAYOUTS_ENV}`;
    throw new UsageError(`${where}: expected hardware, software or auto, got "${value}"`);
  }
  return value as KernelLayouts;
}

/** The tuning cache path of the flag, else of the environment, else the user's cache folder. */
export function tuningCachePath(flags: Flags, env = Deno.env.toObject()): string {
  const flag = String(flags.tuningCache ?? "");
  if (flag) return flag;
  if (env[TUNING_CACHE_ENV]) return env[TUNING_CACHE_ENV];
  const base = env.XDG_CACHE_HOME || `${env.HOME ?? "."}/.cache`;
  return `${base}/dpo-webgpu/tuning.json`;
}

/** A tuning store in one JSON file, written atomically (tmp, fsync, rename). */
export function fileStore(path: string): TuningStore {
  return {
    where: path,
    load: async () => {
      try {
        return await Deno.readTextFile(path);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return undefined;
        throw error;
      }
    },
    save: async (text) => {
      const dir = path.replace(/[/\\][^/\\]*$/, "");
      if (dir && dir !== path) await Deno.mkdir(dir, { recursive: true });
      const tmp = `${path}.tmp-${Deno.pid}`;
      const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
      try {
        await file.write(new TextEncoder().encode(text));
        await file.sync();
      } finally {
        file.close();
      }
      await Deno.rename(tmp, path);
    },
  };
}

/**
 * The GPU context options of the flags: the layouts, and a tuner over the cache file unless
 * `--no-tune` (on software adapters the software layouts run, so nothing is tuned there unless
 * the hardware layouts are forced).
 */
export async function kernelOptions(flags: Flags): Promise<GpuContextOptions> {
  const layouts = layoutsOf(flags);
  if (flags.noTune) return { layouts };
  const tuner = await Tuner.open(fileStore(tuningCachePath(flags)), {
    log: (message) => console.error(message),
  });
  return { layouts, tuner };
}
