/**
 * The page's hyperparameters: the DPO stage's main settings under the command line's flag names,
 * with the embedded default's values (src/pipeline/defaults.ts), read from the form or from URL
 * parameters (`?run=default&max-steps=3&logging-steps=1`). A bad value is a message that names
 * the flag, as on the command line.
 *
 * @module
 */

import { defaultPipelineSpec } from "../src/pipeline/defaults.ts";
import { PREFERENCE_LOSS_TYPES } from "../src/backend/mod.ts";

/**
 * The losses the page offers: all but `sppo`, which reads win-rates the embedded world's pairs
 * do not have (`deno task sppo` labels its own).
 */
export const WEB_LOSS_TYPES = PREFERENCE_LOSS_TYPES.filter((t) => t !== "sppo");

/** The settings the page exposes, by CLI flag name. */
export interface WebSettings {
  beta: number;
  "loss-type": string;
  "learning-rate": number;
  "per-device-train-batch-size": number;
  "num-train-epochs": number;
  "max-steps": number;
  "max-length": number;
  "max-prompt-length": number;
  "logging-steps": number;
  "warmup-steps": number;
  seed: number;
}

/** What each field holds: number or one of the loss types. */
export const FIELDS: Record<keyof WebSettings, "number" | "loss"> = {
  beta: "number",
  "loss-type": "loss",
  "learning-rate": "number",
  "per-device-train-batch-size": "number",
  "num-train-epochs": "number",
  "max-steps": "number",
  "max-length": "number",
  "max-prompt-length": "number",
  "logging-steps": "number",
  "warmup-steps": "number",
  seed: "number",
};

/** Flag aliases the command line accepts too. */
const ALIASES: Record<string, keyof WebSettings> = {
  "batch-size": "per-device-train-batch-size",
  lr: "learning-rate",
};

/** The embedded default's DPO settings. */
export function defaultSettings(): WebSettings {
  const spec = defaultPipelineSpec(".", "web", false);
  return {
    beta: spec.dpo.beta,
    "loss-type": spec.dpo.lossType ?? "sigmoid",
    "learning-rate": spec.dpo.optimizer.lr ?? 5e-6,
    "per-device-train-batch-size": spec.dpo.loop.batchSize ?? 8,
    "num-train-epochs": spec.dpo.loop.numTrainEpochs ?? 1,
    "max-steps": spec.dpo.loop.maxSteps ?? -1,
    "max-length": spec.tokenOptions?.maxLength ?? 64,
    "max-prompt-length": spec.tokenOptions?.maxPromptLength ?? 32,
    "logging-steps": spec.dpo.loop.loggingSteps ?? 5,
    "warmup-steps": spec.dpo.optimizer.warmupSteps ?? 0,
    seed: spec.dpo.loop.seed ?? 42,
  };
}

/** A setting the page cannot use; its message names the flag. */
export class SettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SettingsError";
  }
}

/**
 * Settings from name/value pairs (URL parameters or form fields) over the defaults. Unknown names
 * other than `run` are refused, so a typo never silently runs the default.
 */
export function parseSettings(pairs: Iterable<[string, string]>): WebSettings {
  const out = defaultSettings() as unknown as Record<string, number | string>;
  for (const [raw, value] of pairs) {
    if (raw === "run") continue;
    const name = ALIASES[raw] ?? raw;
    const kind = FIELDS[name as keyof WebSettings];
    if (!kind) {
      throw new SettingsError(
        `--${raw}: not a setting of the page; use ${
          Object.keys(FIELDS).map((f) => `--${f}`).join(", ")
        }`,
      );
    }
    if (kind === "loss") {
      // One loss type: lists with --loss-weights are the command line's.
      if (!(WEB_LOSS_TYPES as readonly string[]).includes(value)) {
        throw new SettingsError(
          `--${name}: unknown loss "${value}"; use one of ${WEB_LOSS_TYPES.join("|")}`,
        );
      }
      out[name] = value;
      continue;
    }
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n)) {
      throw new SettingsError(`--${name}: expected a number, got "${value}"`);
    }
    out[name] = n;
  }
  const s = out as unknown as WebSettings;
  for (const f of ["per-device-train-batch-size", "logging-steps", "max-length"] as const) {
    if (!Number.isInteger(s[f]) || s[f] < 1) {
      throw new SettingsError(`--${f}: expected a whole number >= 1, got ${s[f]}`);
    }
  }
  if (!Number.isInteger(s["max-steps"]) || (s["max-steps"] < 1 && s["max-steps"] !== -1)) {
    throw new SettingsError(`--max-steps: expected -1 (use epochs) or a whole number >= 1`);
  }
  if (!(s["learning-rate"] >= 0)) throw new SettingsError("--learning-rate: must be >= 0");
  return s;
}

/**
 * The `deno task dpo` flags that repeat the page's DPO stage of the embedded default with
 * `settings` (the data and eval cadence included); add --model, --ref-cache and --output-dir.
 */
export function defaultRunCliArgs(settings: WebSettings): string[] {
  return [
    "--data",
    "data/preferences.jsonl",
    "--eval-data",
    "data/preferences_eval.jsonl",
    "--eval-steps",
    String(defaultPipelineSpec(".", "web", false).dpo.loop.evalSteps),
    ...Object.entries(settings).flatMap(([name, value]) => [`--${name}`, String(value)]),
  ];
}
