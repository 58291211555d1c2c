/**
 * `deno task tune`: times every candidate of the tuned kernels (the tiled matmul, the flash
 * attention tiles, the fused LM head's chunk) on the given shapes, keeps the fastest per shape in
 * the tuning cache (tasks/_kernels.ts) and prints a table of candidates and milliseconds. The
 * default shapes are those of the SmolLM2-135M step at 4 pairs x 256 tokens (8 sequences, 2,048
 * rows): every projection's forward and both backward products, attention, and the LM head.
 * Forces the hardware layouts unless --kernel-layouts says otherwise.
 */

import { parseFlags, runMain, UsageError } from "./_cli.ts";
import { GpuBackend } from "../src/gpu/backend.ts";
import type { GpuContext } from "../src/gpu/context.ts";
import { fileStore, KERNEL_FLAGS, layoutsOf, tuningCachePath } from "./_kernels.ts";
import { Tuner } from "../src/gpu/tuner.ts";
import { TUNED_FAMILIES } from "../src/gpu/tuning_families.ts";
import { attentionShapeKey } from "../src/gpu/kernels/attention.ts";
import { lmHeadTuningKey } from "../src/gpu/lm_head.ts";
import { DEFAULT_LOGITS_BUDGET } from "../src/model/activations.ts";

const SEQS = 8, T = 256, ROWS = SEQS * T, C = 576, F = 1536, KV = 192, V = 49152;

/** The 135M step's shape keys on `ctx` (the LM head's widest chunk depends on its bindings). */
function defaultKeys(ctx: GpuContext): string[] {
  const matmuls = [[ROWS, C, C], [ROWS, KV, C], [ROWS, F, C], [ROWS, C, F]]
    .flatMap(([m, n, k]) => [`NT ${m}x${n}x${k}`, `NN ${m}x${k}x${n}`, `TN ${n}x${k}x${m}`]);
  const head = lmHeadTuningKey(ctx, ROWS, V, C, DEFAULT_LOGITS_BUDGET);
  return [...matmuls, attentionShapeKey([SEQS, T, 9, 3, 64]), ...(head ? [head] : [])];
}

const flags = parseFlags(
  "tune",
  "Times the tuned kernels' candidates on this adapter and caches the fastest.",
  {
    shapes: {
      type: "string",
      default: "",
      help: "comma-separated shape keys, e.g. " +
        TUNED_FAMILIES.map((f) => `"${f.example}"`).join(", ") + " (default: the 135M step's)",
    },
    json: { type: "boolean", default: false, help: "print the measured table as JSON on stdout" },
    ...KERNEL_FLAGS,
  },
);

await runMain(async () => {
  const path = tuningCachePath(flags);
  const tuner = await Tuner.open(fileStore(path), { log: (m) => console.error(m) });
  const given = flags.shapes ? String(flags.shapes).split(",").map((s) => s.trim()) : [];
  for (const key of given) {
    if (!tuner.familyOf(key)) {
      const forms = TUNED_FAMILIES.map((f) => `"${f.example}"`).join(", ");
      throw new UsageError(`--shapes: "${key}" is not a shape key of the forms ${forms}`);
    }
  }
  const layouts = flags.kernelLayouts ? layoutsOf(flags) : "hardware";
  const gpu = await GpuBackend.create({ layouts });
  console.error(`adapter: ${gpu.adapterName}; cache: ${path}`);
  const table = await tuner.tune(gpu.ctx, given.length ? given : defaultKeys(gpu.ctx));
  const width = Math.max(...Object.keys(table).map((k) => k.length));
  for (const [key, { choice, ms }] of Object.entries(table)) {
    const row = Object.entries(ms).map(([name, t]) => `${name} ${t.toFixed(3)}`).join("  ");
    console.error(`${key.padEnd(width)} -> ${choice.padEnd(22)} ms: ${row}`);
  }
  if (flags.json) console.log(JSON.stringify({ adapter: gpu.adapterName, cache: path, table }));
  gpu.destroy();
});
