/**
 * The default pipeline of `deno task dpo` with no --model/--data: SFT from the shipped base model
 * in data/, the reference cache from the SFT model, DPO from the SFT model, under runs/<name>/.
 */

import type { Flags } from "./_cli.ts";
import { givenFlags, UsageError } from "./_cli.ts";
import { deviceOf } from "./_flags.ts";
import { openBackend, stageHooks, store } from "./_stage.ts";
import { runPipeline } from "../src/pipeline/pipeline.ts";
import { DEFAULT_WORLD, defaultPipelineSpec } from "../src/pipeline/defaults.ts";

/** The flags the default pipeline takes; its hyperparameters are src/pipeline/defaults.ts's. */
export const DEFAULT_PIPELINE_FLAGS: readonly string[] = ["run-name", "force", "device", "json"];

/**
 * Refuses flags the default pipeline would otherwise ignore (a training or data flag given without
 * --model/--data), so that `deno task dpo --max-steps 5` does not silently run the full default.
 */
export function checkDefaultPipelineFlags(flags: Flags): void {
  const ignored = [...givenFlags(flags)].filter((f) => !DEFAULT_PIPELINE_FLAGS.includes(f));
  if (ignored.length === 0) return;
  const list = ignored.map((f) => `--${f}`).join(", ");
  throw new UsageError(
    `${list}: ${ignored.length === 1 ? "applies" : "apply"} to a run with --model and --data. ` +
      "With neither, the default pipeline runs on data/ with the hyperparameters of " +
      "src/pipeline/defaults.ts and takes only " +
      DEFAULT_PIPELINE_FLAGS.map((f) => `--${f}`).join(", ") +
      ". Pass --model and --data; after a default run, for example: --model runs/default/sft " +
      "--data data/preferences.jsonl --eval-data data/preferences_eval.jsonl --max-length 64 " +
      "--max-prompt-length 32 --ref-cache runs/default/ref_cache/ref_cache.bin. Or drop " +
      list + ".",
  );
}

/** Runs the default pipeline, printing progress and each stage's time. */
export async function runDefaultPipeline(flags: Flags): Promise<void> {
  checkDefaultPipelineFlags(flags);
  const root = new URL("../", import.meta.url).pathname;
  const spec = defaultPipelineSpec(root, String(flags.runName), Boolean(flags.force));
  if (!await store.exists(spec.baseModel)) {
    throw new UsageError(
      `the embedded default is missing (${spec.baseModel}); regenerate it with ` +
        "`deno task world && deno task pretrain`, or pass --model and --data",
    );
  }
  const backend = await openBackend(deviceOf(flags), flags);
  console.error(`default pipeline on ${DEFAULT_WORLD} -> ${spec.runDir}`);
  const bars = new Map<string, ReturnType<typeof stageHooks>>();
  const keys = {
    sft: ["loss"],
    precompute: [],
    dpo: ["loss", "rewards/accuracies", "rewards/margins", "logps/chosen"],
    eval: [],
  };
  const result = await runPipeline(store, backend, spec, {
    stage: (name) => {
      const hooks = stageHooks(name, keys[name]);
      bars.set(name, hooks);
      return hooks;
    },
    onStage: (name, event, seconds) => {
      if (event === "skipped") console.error(`${name}: up to date: skipped (--force redoes it)`);
      if (event === "done") {
        bars.get(name)?.finish();
        console.error(`${name} took ${seconds!.toFixed(1)} s`);
      }
    },
  });
  const evalFile = `${spec.runDir}/eval/eval.json`;
  if (await store.exists(evalFile)) {
    const e = JSON.parse(await store.readText(evalFile));
    const line = (name: string) => {
      const r = e[name];
      const acc = r.pairs && !r.isReference
        ? `, held-out accuracy ${r.pairs.accuracy.toFixed(3)}`
        : "";
      return `  ${name.padEnd(4)} reward ${r.reward.toFixed(3)} ± ${
        r.rewardStd.toFixed(3)
      } (3 seeds), ` +
        `KL ${r.kl.toFixed(2)}, length ${r.length.toFixed(1)}${acc}`;
    };
    console.error(`held-out evaluation (ground-truth reward of samples at temperature 1):`);
    console.error(line("SFT"));
    console.error(line("DPO"));
    for (const s of e.samples.slice(0, 3)) {
      console.error(
        `  "${s.prompt}" -> SFT: ${s.columns.SFT}\n${
          " ".repeat(s.prompt.length + 8)
        }DPO: ${s.columns.DPO}`,
      );
    }
    console.error(`report: ${spec.runDir}/dpo/report.html`);
  }
  const last = result.dpo.rows.at(-1);
  if (flags.json) {
    const evaluation = await store.exists(evalFile)
      ? JSON.parse(await store.readText(evalFile))
      : null;
    console.log(JSON.stringify({ runDir: spec.runDir, final: last, eval: evaluation }));
  }
}
