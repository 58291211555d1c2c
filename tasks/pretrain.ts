/**
 * `deno task pretrain`: pretrains a fresh tiny Llama on the world's corpus (`data/corpus.jsonl`)
 * with the next-token NLL on every token after BOS (EOS included), and saves it in HF layout. This
 * is how `data/base/` was made; the tests never run it. The work is `runPretrain`
 * (src/pipeline/pretrain.ts).
 *
 * Writes to `--output-dir`: config.json, model.safetensors (F32), the tokenizer files,
 * metrics.jsonl (one row per logging step: loss, grad_norm, learning_rate; `eval_loss` rows on
 * the held-out 5% of the corpus, the first before any step) and manifest.json.
 */

import { parseFlags, runMain, UsageError } from "./_cli.ts";
import { openBackend, runStage, stageHooks, store } from "./_stage.ts";
import type { DeviceChoice } from "../src/pipeline/device.ts";
import { runPretrain } from "../src/pipeline/pretrain.ts";

const flags = parseFlags(
  "pretrain",
  "Pretrains a fresh tiny Llama on a text corpus (NLL on all tokens) and saves it in HF layout.",
  {
    data: { type: "string", default: "data/corpus.jsonl", help: "corpus (JSONL of {text})" },
    tokenizer: { type: "string", default: "data", help: "folder with tokenizer.json" },
    "output-dir": { type: "string", default: "data/base", help: "where the model is saved" },
    "max-steps": { type: "number", default: 1000, help: "optimizer steps" },
    "learning-rate": { type: "number", default: 3e-3, aliases: ["lr"], help: "peak AdamW rate" },
    "warmup-steps": { type: "number", default: 50, help: "linear warmup steps" },
    "batch-size": {
      type: "number",
      default: 32,
      aliases: ["per-device-train-batch-size"],
      help: "sequences per step",
    },
    "weight-decay": { type: "number", default: 0.01, help: "AdamW decoupled weight decay" },
    "hidden-size": { type: "number", default: 128, help: "model width" },
    "intermediate-size": { type: "number", default: 344, help: "MLP width" },
    "num-layers": { type: "number", default: 2, help: "decoder layers" },
    "logging-steps": { type: "number", default: 25, help: "steps between metrics rows" },
    "eval-steps": { type: "number", default: 100, help: "steps between held-out losses" },
    seed: { type: "number", default: 0, help: "seed of the initial weights and batch order" },
    device: {
      type: "string",
      default: "auto",
      choices: ["auto", "webgpu", "cpu"],
      help: "backend",
    },
    force: { type: "boolean", default: false, help: "redo even when the model is up to date" },
    "overwrite-output-dir": {
      type: "boolean",
      default: false,
      help: "clear another run's outputs from --output-dir instead of refusing to start",
    },
    json: { type: "boolean", default: false, help: "print the final metrics as JSON on stdout" },
  },
);

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new UsageError(`--${name}: expected a positive integer, got ${value}`);
  }
  return value;
}

await runMain(async () => {
  const options = {
    data: String(flags.data),
    tokenizer: String(flags.tokenizer),
    outputDir: String(flags.outputDir),
    maxSteps: positiveInt("max-steps", Number(flags.maxSteps)),
    learningRate: Number(flags.learningRate),
    warmupSteps: Number(flags.warmupSteps),
    batchSize: positiveInt("batch-size", Number(flags.batchSize)),
    weightDecay: Number(flags.weightDecay),
    hiddenSize: Number(flags.hiddenSize),
    intermediateSize: Number(flags.intermediateSize),
    numLayers: Number(flags.numLayers),
    loggingSteps: positiveInt("logging-steps", Number(flags.loggingSteps)),
    evalSteps: positiveInt("eval-steps", Number(flags.evalSteps)),
    seed: Number(flags.seed),
    force: flags.force as boolean,
    overwriteOutputDir: flags.overwriteOutputDir as boolean,
  };
  const backend = await openBackend(flags.device as DeviceChoice, flags);
  const hooks = stageHooks("pretrain", ["loss", "grad_norm"]);
  const { skipped, results } = await runStage(
    "pretrain",
    options.outputDir,
    hooks,
    () => runPretrain(store, backend, options, hooks),
  );
  if (skipped) return;
  console.error(
    `saved ${options.outputDir}: loss ${results!.loss.toFixed(4)}, held-out ` +
      `${results!.eval_loss.toFixed(4)} nats/token (unigram ${
        results!.unigram_entropy.toFixed(3)
      })`,
  );
  if (flags.json) console.log(JSON.stringify({ outputDir: options.outputDir, ...results }));
  backend.destroy();
});
