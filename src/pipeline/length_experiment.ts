/**
 * The length-exploitation experiment's inputs: the training pairs relabelled by a judge that adds
 * a small bonus per token to the true score (src/world/length_judge.ts), cached by the SFT model,
 * and the methods the frontier trains on them (DPO on the true labels beside DPO, R-DPO and SimPO
 * on the judged pairs).
 *
 * @module
 */

import type { Backend } from "../backend/mod.ts";
import { loadPreferenceDataset } from "../data/mod.ts";
import type { FileStore } from "../io/fs.ts";
import { joinPath } from "../io/fs.ts";
import { type JudgedPair, relabelByLength } from "../world/length_judge.ts";
import type { FrontierMethod } from "./frontier.ts";
import type { PipelineSpec } from "./pipeline.ts";
import { runPrecompute } from "./precompute.ts";
import type { StageHooks } from "./stage.ts";

/**
 * Relabels the training pairs with the length-biased judge into `<runDir>/length/`, caches the SFT
 * model's log-probs of them, and returns DPO on the true labels, then DPO, R-DPO (α = the
 * judge's bonus; docs/losses.md has what other α do) and SimPO on the judged pairs.
 */
export async function lengthExperimentMethods(
  store: FileStore,
  backend: Backend,
  spec: PipelineSpec,
  sft: string,
  bonus: number,
  hooks: StageHooks = {},
): Promise<FrontierMethod[]> {
  const beta = spec.dpo.beta;
  if (!(bonus >= 0)) throw new RangeError(`length bonus: expected a number ≥ 0, got ${bonus}`);
  // The project's loader: bad rows are reported with file:line (exit 2) before any work.
  const { rows } = await loadPreferenceDataset(store, spec.preferenceData);
  const text: JudgedPair[] = rows.flatMap((r) => r.kind === "standard" ? [r] : []);
  if (text.length !== rows.length) {
    throw new RangeError(
      `${spec.preferenceData}: the length judge reads text pairs (prompt, chosen, rejected strings); ` +
        "this file is conversational or tokenized",
    );
  }
  const judged = relabelByLength(
    text.map(({ prompt, chosen, rejected }) => ({ prompt, chosen, rejected })),
    bonus,
  );
  hooks.log?.(
    `length judge (bonus ${bonus} per token): ${judged.pairs.length} pairs, ` +
      `${judged.flipped} reversed, ${judged.ties} tied and dropped; ` +
      `chosen ${((judged.lengthRatio - 1) * 100).toFixed(1)}% longer than rejected`,
  );
  const dir = joinPath(spec.runDir, "length");
  const data = joinPath(dir, "preferences_judged.jsonl");
  const refCache = joinPath(dir, "ref_cache.bin");
  await store.mkdirp(dir);
  const jsonl = judged.pairs.map((p) => JSON.stringify(p)).join("\n") + "\n";
  await store.writeFileAtomic(data, new TextEncoder().encode(jsonl));
  await runPrecompute(store, backend, {
    model: sft,
    data: { path: data },
    tokenOptions: spec.tokenOptions,
    output: refCache,
  }, hooks);
  const judgedData = { preferenceData: data, refCache };
  return [
    { method: "dpo", beta, name: "DPO (true labels)" },
    { method: "dpo", beta, name: "DPO", data: judgedData },
    { method: "dpo", beta, name: "R-DPO", loss: { rdpoAlpha: bonus }, data: judgedData },
    {
      method: "dpo",
      beta: 2,
      name: "SimPO",
      loss: { lossType: "simpo", simpoGamma: 1 },
      data: judgedData,
    },
  ];
}
