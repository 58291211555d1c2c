/**
 * The default pipeline of `deno task dpo` with no --model/--data: SFT from the shipped base model
 * in data/, the reference cache from the SFT model, DPO from the SFT model, under runs/<name>/.
 */

import type { Flags } from "./_cli.ts";
import { UsageError } from "./_cli.ts";
import { deviceOf } from "./_flags.ts";
import { openBackend, stageHooks, store } from "./_stage.ts";
import { runPipeline } from "../src/pipeline/pipeline.ts";
import { DEFAULT_WORLD, defaultPipelineSpec } from "../src/pipeline/defaults.ts";

/** Runs the default pipeline, printing progress and each stage's time. */
export async function runDefaultPipeline(flags: Flags): Promise<void> {
  const root = new URL("../", import.meta.url).pathname;
  const spec = defaultPipelineSpec(root, String(flags.runName), Boolean(flags.force));
  if (!await store.exists(spec.baseModel)) {
    throw new UsageError(
      `the embedded default is missing (${spec.baseModel}); regenerate it with ` +
        "`deno task world && deno task pretrain`, or pass --model and --data",
    );
  }
  const backend = await openBackend(deviceOf(flags));
  console.error(`default pipeline on ${DEFAULT_WORLD} -> ${spec.runDir}`);
  const bars = new Map<string, ReturnType<typeof stageHooks>>();
  const keys = {
    sft: ["loss"],
    precompute: [],
    dpo: ["loss", "rewards/accuracies", "rewards/margins", "logps/chosen"],
  };
  const result = await runPipeline(store, backend, spec, {
    stage: (name) => {
      const hooks = stageHooks(name, keys[name]);
      bars.set(name, hooks);
      return hooks;
    },
    onStage: (name, event, seconds) => {
      if (event === "skipped") console.error(`${name}: up to date, skipped (--force redoes it)`);
      if (event === "done") {
        bars.get(name)?.finish();
        console.error(`${name} took ${seconds!.toFixed(1)} s`);
      }
    },
  });
  const last = result.dpo.rows.at(-1);
  if (last) {
    console.error(
      "final policy on held-out pairs: " +
        Object.entries(last).filter(([k]) => k.startsWith("eval_")).map(([k, v]) =>
          `${k} ${v.toPrecision(4)}`
        ).join(", "),
    );
  }
  if (flags.json) console.log(JSON.stringify({ runDir: spec.runDir, final: last }));
}
