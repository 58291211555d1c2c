/**
 * `deno task tune`: times every tiled matmul candidate on the given shapes (default: the
 * SmolLM2-135M projections at 4 pairs x 256 tokens, forward and both backward products), keeps the
 * fastest per shape in the tuning cache (tasks/_kernels.ts) and prints a table of candidates and
 * milliseconds. Forces the hardware layouts unless --kernel-layouts says otherwise.
 */

import { parseFlags, runMain, UsageError } from "./_cli.ts";
import { GpuBackend } from "../src/gpu/backend.ts";
import { fileStore, KERNEL_FLAGS, layoutsOf, tuningCachePath } from "./_kernels.ts";
import { MatmulTuner, parseShapeKey } from "../src/gpu/matmul_tuner.ts";

const ROWS = 1024, C = 576, F = 1536, KV = 192;
const DEFAULT_SHAPES = [
  [ROWS, C, C],
  [ROWS, KV, C],
  [ROWS, F, C],
  [ROWS, C, F],
].flatMap(([m, n, k]) => [`NT ${m}x${n}x${k}`, `NN ${m}x${k}x${n}`, `TN ${n}x${k}x${m}`]);

const flags = parseFlags(
  "tune",
  "Times the matmul candidates on this adapter and caches the fastest.",
  {
    shapes: {
      type: "string",
      default: "",
      help: 'comma-separated "NT 1024x576x1536" keys (default: the 135M-shape projections)',
    },
    json: { type: "boolean", default: false, help: "print the measured table as JSON on stdout" },
    ...KERNEL_FLAGS,
  },
);

await runMain(async () => {
  const keys = flags.shapes ? String(flags.shapes).split(",").map((s) => s.trim()) : DEFAULT_SHAPES;
  for (const key of keys) {
    try {
      parseShapeKey(key);
    } catch {
      throw new UsageError(`--shapes: "${key}" is not of the form "NT 1024x576x1536"`);
    }
  }
  const layouts = flags.kernelLayouts ? layoutsOf(flags) : "hardware";
  const path = tuningCachePath(flags);
  const tuner = await MatmulTuner.open(fileStore(path), { log: (m) => console.error(m) });
  const gpu = await GpuBackend.create({ layouts });
  console.error(`adapter: ${gpu.adapterName}; cache: ${path}`);
  const table = await tuner.tune(gpu.ctx, keys);
  for (const [key, { choice, ms }] of Object.entries(table)) {
    const row = Object.entries(ms).map(([name, t]) => `${name} ${t.toFixed(3)}`).join("  ");
    console.error(`${key.padEnd(20)} -> ${choice.padEnd(22)} ms: ${row}`);
  }
  if (flags.json) console.log(JSON.stringify({ adapter: gpu.adapterName, cache: path, table }));
  gpu.destroy();
});
