/**
 * The stage skeleton every stage of the pipeline (SFT, precompute, DPO, KTO, pretraining) runs
 * on: the hooks a caller passes, the manifest with the fingerprint of the work, the up-to-date
 * check that skips a stage whose outputs are already there, and the manifest's tail.
 *
 * A stage is up to date when its folder holds a complete manifest with the same fingerprint
 * (options, input fingerprints, library version) and every output it lists is there with the
 * SHA-256 the manifest recorded when the stage finished. So another run's weights left at the
 * output path, or a truncated file, make the stage run again instead of being "skipped".
 *
 * @module
 */

import type { FileStore } from "../io/fs.ts";
import { basename, joinPath } from "../io/fs.ts";
import { sha256Hex } from "../io/hash.ts";
import {
  finishManifest,
  type Manifest,
  readManifest,
  readRows,
  type StageResult,
  startManifest,
} from "./manifest.ts";

/** Hooks of a stage: messages and progress. */
export interface StageHooks {
  log?: (message: string) => void;
  onStep?: (step: number, total: number) => void;
  onLog?: (row: Record<string, number>) => void;
  onProgress?: (done: number, total: number) => void;
}

/** What a stage declares before it works. */
export interface StageDeclaration {
  /** The stage's name, e.g. "sft". */
  stage: string;
  /** Where its manifest goes. */
  manifestPath: string;
  /** The options that decide its outputs (see `fingerprintedOptions`). */
  options: Record<string, unknown>;
  /** Fingerprints of its inputs (model, data, tokenizer, cache). */
  inputs: Record<string, string>;
  /** The adapter it runs on (recorded, not fingerprinted). */
  adapter: string;
  /** The files it writes, checked by hash on the next run. */
  outputs: readonly string[];
  /** Redo the work even when it is up to date. */
  force?: boolean;
}

/** An opened stage: its manifest to fill in, and whether the work is already done. */
export interface OpenedStage {
  manifest: Manifest;
  upToDate: boolean;
  /** Hashes the outputs, marks the manifest complete and writes it atomically. */
  finish(results?: Record<string, unknown>): Promise<Manifest>;
}

/** SHA-256 of each output, by file name. */
async function outputHashes(
  store: FileStore,
  outputs: readonly string[],
): Promise<Record<string, string>> {
  const hashes: Record<string, string> = {};
  for (const path of outputs) hashes[basename(path)] = await sha256Hex(await store.readFile(path));
  return hashes;
}

/** Starts a stage's manifest and checks whether its outputs are already there and whole. */
export async function openStage(store: FileStore, d: StageDeclaration): Promise<OpenedStage> {
  const manifest = await startManifest(d.stage, d.options, d.inputs, d.adapter);
  let upToDate = false;
  if (!d.force) {
    const previous = await readManifest(store, d.manifestPath);
    const recorded = previous?.outputs;
    if (
      previous?.complete === true && previous.stage_fingerprint === manifest.stage_fingerprint &&
      recorded !== undefined
    ) {
      upToDate = true;
      for (const path of d.outputs) {
        if (!await store.exists(path)) upToDate = false;
        else if (recorded[basename(path)] !== await sha256Hex(await store.readFile(path))) {
          upToDate = false;
        }
        if (!upToDate) break;
      }
    }
  }
  return {
    manifest,
    upToDate,
    finish: async (results) => {
      manifest.outputs = await outputHashes(store, d.outputs);
      return await finishManifest(store, d.manifestPath, manifest, results);
    },
  };
}

/** What a skipped training stage returns: the metrics rows it wrote when it ran. */
export async function skippedTraining(store: FileStore, outputDir: string): Promise<StageResult> {
  return { skipped: true, rows: await readRows(store, joinPath(outputDir, "metrics.jsonl")) };
}
