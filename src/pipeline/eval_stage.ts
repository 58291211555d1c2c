/**
 * The evaluation stage that ends the pipeline: the policy and its reference sample the held-out
 * prompts (3 seeds), the ground-truth reward and KL(policy ‖ reference) are measured, the implicit
 * reward is scored on held-out pairs; the table, samples and training curves go into
 * `report.html` next to the DPO metrics.
 *
 * @module
 */

import type { Backend } from "../backend/mod.ts";
import type { FileStore } from "../io/fs.ts";
import { joinPath } from "../io/fs.ts";
import { type Comparison, evaluateFolders, type FolderEvalOptions } from "../eval/compare.ts";
import { type BatchLayout, renderReport } from "../eval/report.ts";
import { readManifest, readRows, type StageResult } from "./manifest.ts";
import { openStage } from "./stage.ts";

/** Options of {@link runEvalStage}. */
export interface EvalStageOptions
  extends Omit<FolderEvalOptions, "onProgress" | "model" | "refModel" | "names"> {
  /** The trained policy's folder (with metrics.jsonl and manifest.json). */
  policyDir: string;
  /** The reference's folder. */
  referenceDir: string;
  /** Where eval.json and the manifest go. */
  outputDir: string;
  /** Row names. @default ["SFT", "DPO"] */
  names?: readonly [string, string];
  /** Report title. @default "DPO run report: <policyDir>" */
  title?: string;
  /** Redo even when up to date. @default false */
  force?: boolean;
  /** Progress of each evaluation pass. */
  onProgress?: (stage: string, done: number, total: number) => void;
}

/** Evaluates, writes eval.json and the policy's report.html; skipped when up to date. */
export async function runEvalStage(
  store: FileStore,
  backend: Backend,
  options: EvalStageOptions,
): Promise<StageResult & { comparison?: Comparison; report: string }> {
  const report = joinPath(options.policyDir, "report.html");
  const policyManifest = await readManifest(store, joinPath(options.policyDir, "manifest.json"));
  const referenceManifest = await readManifest(
    store,
    joinPath(options.referenceDir, "manifest.json"),
  );
  // frozenDtype changes how the weights are held, not a bit of the results: not fingerprinted.
  const { onProgress: _, force: __, frozenDtype: ___, ...recorded } = options;
  const manifestPath = joinPath(options.outputDir, "manifest.json");
  const stage = await openStage(store, {
    stage: "eval",
    manifestPath,
    options: recorded,
    inputs: {
      policy: policyManifest?.stage_fingerprint ?? options.policyDir,
      reference: referenceManifest?.stage_fingerprint ?? options.referenceDir,
    },
    adapter: backend.adapterName,
    outputs: [joinPath(options.outputDir, "eval.json"), report],
    force: options.force,
  });
  if (stage.upToDate) return { skipped: true, rows: [], report };
  try {
    const names = options.names ?? ["SFT", "DPO"];
    const comparison = await evaluateFolders(store, backend, {
      ...options,
      model: options.policyDir,
      refModel: options.referenceDir,
      names,
    });
    await store.mkdirp(options.outputDir);
    const { reference, policy } = comparison;
    const results = {
      [names[0]]: { ...reference, samples: undefined },
      [names[1]]: { ...policy, samples: undefined },
      samples: comparison.samples,
    };
    await store.writeFileAtomic(
      joinPath(options.outputDir, "eval.json"),
      new TextEncoder().encode(JSON.stringify(results, null, 2) + "\n"),
    );
    const metrics = await readRows(store, joinPath(options.policyDir, "metrics.jsonl"));
    const html = await renderReport({
      title: options.title ?? `DPO run report: ${options.policyDir}`,
      metrics,
      evalTable: comparison.evalTable,
      samples: comparison.samples,
      manifest: policyManifest,
      batches: policyManifest?.results?.batches as BatchLayout | undefined,
    });
    await store.writeFileAtomic(report, new TextEncoder().encode(html));
    await stage.finish({
      reward: { [names[0]]: reference.reward, [names[1]]: policy.reward },
      reward_sd: { [names[0]]: reference.rewardStd, [names[1]]: policy.rewardStd },
      kl: policy.kl,
      accuracy: policy.pairs?.accuracy,
    });
    return { skipped: false, rows: [], comparison, report };
  } finally {
    await stage.release();
  }
}
