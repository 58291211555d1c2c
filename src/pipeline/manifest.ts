/**
 * Run manifests: every option, the fingerprints of the inputs, the versions and the adapter of a
 * stage, written beside its outputs so the run can be repeated exactly. A stage whose manifest is
 * complete and whose fingerprint (options + inputs) still matches is up to date and is skipped.
 *
 * @module
 */

import type { FileStore } from "../io/fs.ts";
import { fingerprintJson } from "../io/hash.ts";

/** Version of this library, written into manifests. */
export const VERSION = "0.1.0";

/** What a manifest records. */
export interface Manifest {
  stage: string;
  /** Hash of `options` and `inputs`: equal fingerprints mean the same work. */
  stage_fingerprint: string;
  /** True once every output is written. */
  complete: boolean;
  options: Record<string, unknown>;
  /** Fingerprints of the inputs (model, datasets, tokenizer, cache). */
  inputs: Record<string, string>;
  /** Where inputs came from (paths), informational. */
  sources?: Record<string, string>;
  adapter: string;
  versions: { library: string; runtime: string };
  /** Dataset counts (read, kept, dropped by reason, truncated). */
  datasets?: Record<string, unknown>;
  started: string;
  finished?: string;
  seconds?: number;
  /** SHA-256 of each output file by name, recorded when the stage finished. */
  outputs?: Record<string, string>;
  /** Final numbers worth finding without reading metrics.jsonl. */
  results?: Record<string, unknown>;
}

/** The fingerprint of a stage's work. */
export function stageFingerprint(
  stage: string,
  options: Record<string, unknown>,
  inputs: Record<string, string>,
): Promise<string> {
  return fingerprintJson({ stage, options, inputs, version: VERSION });
}

/** A new, incomplete manifest. */
export async function startManifest(
  stage: string,
  options: Record<string, unknown>,
  inputs: Record<string, string>,
  adapter: string,
): Promise<Manifest> {
  return {
    stage,
    stage_fingerprint: await stageFingerprint(stage, options, inputs),
    complete: false,
    options,
    inputs,
    adapter,
    versions: {
      library: VERSION,
      runtime: (globalThis.navigator as Navigator | undefined)?.userAgent ?? "unknown",
    },
    started: new Date().toISOString(),
  };
}

/** Marks a manifest complete and writes it atomically. */
export async function finishManifest(
  store: FileStore,
  path: string,
  manifest: Manifest,
  results?: Record<string, unknown>,
): Promise<Manifest> {
  const finished = new Date();
  const done: Manifest = {
    ...manifest,
    complete: true,
    finished: finished.toISOString(),
    seconds: (finished.getTime() - new Date(manifest.started).getTime()) / 1000,
    ...(results ? { results } : {}),
  };
  await writeManifest(store, path, done);
  return done;
}

/** Writes a manifest atomically. */
export async function writeManifest(store: FileStore, path: string, m: Manifest): Promise<void> {
  await store.writeFileAtomic(path, new TextEncoder().encode(JSON.stringify(m, null, 2) + "\n"));
}

/** The manifest at `path`, or undefined when missing or unreadable. */
export async function readManifest(store: FileStore, path: string): Promise<Manifest | undefined> {
  try {
    return JSON.parse(await store.readText(path)) as Manifest;
  } catch {
    return undefined;
  }
}

/** What a stage returns: its metrics rows, and whether it was skipped as up to date. */
export interface StageResult {
  /** Whether the stage was up to date and did nothing. */
  skipped: boolean;
  /** Its metrics rows (metrics.jsonl). */
  rows: Array<Record<string, number>>;
}

/** Options that do not change a stage's outputs, left out of its fingerprint. */
export function fingerprintedOptions(options: object): Record<string, unknown> {
  const { resume: _r, force: _f, overwriteOutputDir: _o, frozenDtype: _d, ...rest } =
    options as Record<
      string,
      unknown
    >;
  return rest;
}

/** The rows of a metrics.jsonl, or [] when it is missing. */
export async function readRows(
  store: FileStore,
  path: string,
): Promise<Array<Record<string, number>>> {
  if (!await store.exists(path)) return [];
  return (await store.readText(path)).split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
}
