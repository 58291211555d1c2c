/**
 * Messages between the page (web/main.ts) and the worker (web/worker.ts) that runs the pipeline.
 *
 * @module
 */

import type { WebSettings } from "./params.ts";

/** Files of a user's own run (File objects are passed without copying their bytes). */
export interface CustomInputs {
  /** The model folder's files: config.json, model*.safetensors, tokenizer.json, ... */
  model: File[];
  /** A preference dataset in TRL's formats (JSONL, JSON or Parquet). */
  dataset: File;
  /** A reference cache from `deno task precompute`; without one the page computes it. */
  cache?: File;
}

/** Page to worker. */
export type ToWorker =
  | { type: "start"; run: "default"; settings: WebSettings; baseUrl: string }
  | { type: "start"; run: "custom"; settings: WebSettings; inputs: CustomInputs }
  | { type: "cancel" };

/** A file the page offers for download. */
export interface Download {
  id: string;
  name: string;
  bytes: Uint8Array;
}

/** Worker to page. */
export type FromWorker =
  | { type: "stage"; stage: string; event: "start" | "skipped" | "done"; seconds?: number }
  | { type: "progress"; stage: string; done: number; total: number }
  | { type: "log"; message: string }
  | { type: "metrics"; stage: string; row: Record<string, number> }
  | { type: "adapter"; description: string }
  | { type: "done"; metricsJsonl: string; downloads: Download[]; tokensPerSecond?: number }
  | { type: "cancelled" }
  | { type: "error"; name: string; message: string };

/** The embedded default's files under data/, which the page's server serves and the worker fetches. */
export const DEFAULT_FILES: readonly string[] = [
  "base/config.json",
  "base/model.safetensors",
  "base/tokenizer.json",
  "base/tokenizer_config.json",
  "sft.jsonl",
  "sft_eval.jsonl",
  "preferences.jsonl",
  "preferences_eval.jsonl",
];
