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
 * While it works a stage holds a lock on its output (one run at a time), and its manifest says
 * `complete: false` before anything else is written. A training stage's folder belongs to one
 * run: a folder holding another run's outputs (another fingerprint in its manifest or in its
 * checkpoints) is refused unless the caller asks to overwrite it, which clears those outputs.
 *
 * @module
 */

import type { FileStore } from "../io/fs.ts";
import { basename, dirname, isTempFile, isTempFileOf, joinPath } from "../io/fs.ts";
import { sha256Hex } from "../io/hash.ts";
import { acquireLock } from "../io/lock.ts";
import {
  finishManifest,
  type Manifest,
  readManifest,
  readRows,
  type StageResult,
  startManifest,
  writeManifest,
} from "./manifest.ts";

/** An output folder holds another run's outputs (exit 2 on the command line). */
export class OutputDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OutputDirError";
  }
}

/** The files and folders of a training folder that a run writes (and an overwrite clears). */
const RUN_OUTPUT =
  /^(manifest\.json|(adapter_)?model.*\.safetensors(\.index\.json)?|(adapter_)?config\.json|metrics\.jsonl|report\.html|checkpoint-\d+)$/;

/** The file in a checkpoint that records its step, history and run fingerprint. */
export const TRAINER_STATE = "trainer_state.json";

/** Hooks of a stage: messages and progress. */
export interface StageHooks {
  /** A human message (data counts, a resume, a checkpoint saved). */
  log?: (message: string) => void;
  /** An optimizer step finished, of `total`. */
  onStep?: (step: number, total: number) => void;
  /** A metrics row was logged. */
  onLog?: (row: Record<string, number>) => void;
  /** Scoring progress (precompute, evaluation). */
  onProgress?: (done: number, total: number) => void;
  /** Stops the stage at its next step or batch (it rejects with the signal's reason). */
  signal?: AbortSignal;
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
  /**
   * The folder a training stage owns (checked for another run's outputs); absent for a stage
   * that writes one file (precompute).
   */
  outputDir?: string;
  /** Clear another run's outputs from `outputDir` instead of refusing (TRL's overwrite_output_dir). */
  overwrite?: boolean;
  /** Messages (a stale lock taken over, outputs cleared). */
  log?: (message: string) => void;
}

/** An opened stage: its manifest to fill in, and whether the work is already done. */
export interface OpenedStage {
  manifest: Manifest;
  upToDate: boolean;
  /** Hashes the outputs, marks the manifest complete, writes it atomically and unlocks. */
  finish(results?: Record<string, unknown>): Promise<Manifest>;
  /** Unlocks without finishing (the stage failed); idempotent. */
  release(): Promise<void>;
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

/**
 * Locks a stage's output, starts its manifest and checks whether its outputs are already there
 * and whole; when they are not, claims the output folder and writes the incomplete manifest.
 * @throws LockError while another run works there; OutputDirError for another run's folder.
 */
export async function openStage(store: FileStore, d: StageDeclaration): Promise<OpenedStage> {
  const where = d.outputDir ?? d.outputs[0];
  const lockPath = d.outputDir ? joinPath(d.outputDir, ".lock") : `${where}.lock`;
  await store.mkdirp(dirname(lockPath));
  const release = await acquireLock(store, lockPath, `${d.stage} output ${where}`, d.log);
  try {
    await removeLeftoverTemps(store, d);
    return await openLocked(store, d, release);
  } catch (error) {
    await release();
    throw error;
  }
}

async function openLocked(
  store: FileStore,
  d: StageDeclaration,
  release: () => Promise<void>,
): Promise<OpenedStage> {
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
  if (upToDate) {
    await release();
    return { manifest, upToDate, finish: () => Promise.resolve(manifest), release };
  }
  if (d.outputDir) await claimFolder(store, d.outputDir, manifest.stage_fingerprint, d);
  await writeManifest(store, d.manifestPath, manifest);
  return {
    manifest,
    upToDate,
    finish: async (results) => {
      manifest.outputs = await outputHashes(store, d.outputs);
      const done = await finishManifest(store, d.manifestPath, manifest, results);
      await release();
      return done;
    },
    release,
  };
}

/**
 * Removes the temporary files of atomic writes that a killed run left behind (a kill between a
 * temporary file's write and its rename): in a training folder and its checkpoints every one, for
 * a one-file stage those of its outputs and manifest. The caller holds the lock, so no live run of
 * this output is writing them.
 */
async function removeLeftoverTemps(store: FileStore, d: StageDeclaration): Promise<void> {
  const found: string[] = [];
  const sweep = async (dir: string, keep: (name: string) => boolean) => {
    if (!await store.exists(dir)) return;
    for (const name of await store.list(dir)) {
      if (keep(name)) found.push(joinPath(dir, name));
    }
  };
  if (d.outputDir) {
    await sweep(d.outputDir, isTempFile);
    if (await store.exists(d.outputDir)) {
      for (const name of await store.list(d.outputDir)) {
        if (/^checkpoint-\d+$/.test(name)) await sweep(joinPath(d.outputDir, name), isTempFile);
      }
    }
  } else {
    const targets = [...d.outputs, d.manifestPath];
    for (const dir of new Set(targets.map(dirname))) {
      await sweep(dir, (name) => targets.some((t) => dirname(t) === dir && isTempFileOf(name, t)));
    }
  }
  for (const path of found) await store.remove(path);
  if (found.length > 0) {
    d.log?.(
      `removed ${found.length} temporary file(s) a killed run left behind: ${found.join(", ")}`,
    );
  }
}

/** Why `dir` holds another run's outputs, or undefined when everything there is this run's. */
async function foreignOutputs(
  store: FileStore,
  dir: string,
  fingerprint: string,
): Promise<string | undefined> {
  const names = await store.list(dir);
  const previous = await readManifest(store, joinPath(dir, "manifest.json"));
  if (previous && previous.stage_fingerprint !== fingerprint) {
    return `its manifest.json is of another run (stage ${previous.stage}, other options or inputs)`;
  }
  if (!previous && names.some((n) => /^(adapter_)?model.*\.safetensors$/.test(n))) {
    return "it holds a model without a manifest.json";
  }
  for (const name of names.filter((n) => /^checkpoint-\d+$/.test(n))) {
    // A checkpoint without trainer_state.json (written last) is one a killed run left half
    // written: nobody's to resume from (resume passes over it), and this run rewrites it whole.
    if (!await store.exists(joinPath(dir, name, TRAINER_STATE))) continue;
    if (await checkpointFingerprint(store, joinPath(dir, name)) !== fingerprint) {
      return `${name} is another run's checkpoint`;
    }
  }
  return undefined;
}

/** The run fingerprint a checkpoint records, or undefined (incomplete, or older than this). */
export async function checkpointFingerprint(
  store: FileStore,
  checkpoint: string,
): Promise<string | undefined> {
  try {
    const state = JSON.parse(await store.readText(joinPath(checkpoint, TRAINER_STATE)));
    return typeof state.run_fingerprint === "string" ? state.run_fingerprint : undefined;
  } catch {
    return undefined;
  }
}

/** Refuses, or with `overwrite` clears, another run's outputs in a training folder. */
async function claimFolder(
  store: FileStore,
  dir: string,
  fingerprint: string,
  d: StageDeclaration,
): Promise<void> {
  const why = await foreignOutputs(store, dir, fingerprint);
  if (!why) return;
  if (!d.overwrite) {
    throw new OutputDirError(
      `${dir} holds another run's outputs (${why}): pass --overwrite-output-dir to clear them, ` +
        "or choose another --output-dir",
    );
  }
  const cleared = (await store.list(dir)).filter((n) => RUN_OUTPUT.test(n));
  for (const name of cleared) await store.remove(joinPath(dir, name));
  d.log?.(`cleared another run's outputs from ${dir} (${why}): ${cleared.join(", ")}`);
}

/** What a skipped training stage returns: the metrics rows it wrote when it ran. */
export async function skippedTraining(store: FileStore, outputDir: string): Promise<StageResult> {
  return { skipped: true, rows: await readRows(store, joinPath(outputDir, "metrics.jsonl")) };
}
