/**
 * The page's worker: runs the library's own pipeline stages (src/pipeline) on WebGPU over an
 * in-memory file store, so the page stays responsive. The embedded default runs SFT, the
 * reference precompute and DPO exactly as `deno task dpo` does (without the sampling eval); a
 * user's own model and dataset run precompute (unless a cache is given) and DPO.
 *
 * @module
 */

/// <reference lib="webworker" />

import { GpuBackend } from "../src/gpu/backend.ts";
import { memoryStore, Tuner } from "../src/gpu/tuner.ts";
import { MemoryFileStore } from "../src/io/memory_fs.ts";
import { basename, joinPath } from "../src/io/fs.ts";
import { defaultPipelineSpec } from "../src/pipeline/defaults.ts";
import { announced, type PipelineHooks, runPaths, runPipeline } from "../src/pipeline/pipeline.ts";
import { runPrecompute } from "../src/pipeline/precompute.ts";
import { runDpo } from "../src/pipeline/dpo.ts";
import type { StageHooks } from "../src/pipeline/stage.ts";
import type { PreferenceLossType } from "../src/backend/mod.ts";
import {
  type CustomInputs,
  DEFAULT_FILES,
  type Download,
  type FromWorker,
  type ToWorker,
} from "./protocol.ts";
import type { WebSettings } from "./params.ts";

const scope = self as unknown as DedicatedWorkerGlobalScope;
const post = (m: FromWorker, transfer: Transferable[] = []) => scope.postMessage(m, transfer);
let controller: AbortController | undefined;

/** The files of a trained folder that make an HF checkpoint. */
const MODEL_FILES =
  /^(config\.json|model.*\.safetensors(\.index\.json)?|tokenizer.*\.json|special_tokens_map\.json|generation_config\.json)$/;

function hooksFor(stage: string, signal: AbortSignal): StageHooks {
  return {
    signal,
    log: (message) => post({ type: "log", message: `${stage}: ${message}` }),
    onStep: (done, total) => post({ type: "progress", stage, done, total }),
    onProgress: (done, total) => post({ type: "progress", stage, done, total }),
    onLog: (row) => post({ type: "metrics", stage, row }),
  };
}

/** Stage hooks and stage announcements, as messages to the page. */
function pipelineHooks(signal: AbortSignal): PipelineHooks {
  return {
    stage: (name) => hooksFor(name, signal),
    onStage: (stage, event, seconds) => post({ type: "stage", stage, event, seconds }),
  };
}

function dpoSettings(s: WebSettings) {
  return {
    beta: s.beta,
    lossType: s["loss-type"] as PreferenceLossType,
    optimizer: {
      lr: s["learning-rate"],
      schedule: "linear" as const,
      warmupSteps: s["warmup-steps"],
    },
    loop: {
      batchSize: s["per-device-train-batch-size"],
      numTrainEpochs: s["num-train-epochs"],
      maxSteps: s["max-steps"],
      loggingSteps: s["logging-steps"],
      seed: s.seed,
    },
  };
}

async function folderDownloads(store: MemoryFileStore, dir: string, prefix: string) {
  const out: Download[] = [];
  for (const name of await store.list(dir)) {
    if (MODEL_FILES.test(name)) {
      out.push({ id: `${prefix}-${name}`, name, bytes: await store.readFile(joinPath(dir, name)) });
    }
  }
  return out;
}

async function runDefault(
  store: MemoryFileStore,
  backend: GpuBackend,
  baseUrl: string,
  s: WebSettings,
  signal: AbortSignal,
) {
  await Promise.all(DEFAULT_FILES.map(async (f) => {
    const response = await fetch(new URL(`data/${f}`, baseUrl), { signal });
    if (!response.ok) {
      throw new Error(
        `data/${f}: ${response.status} ${response.statusText} from the page's server`,
      );
    }
    const path = joinPath("data", f);
    await store.mkdirp(path.slice(0, path.lastIndexOf("/")));
    await store.writeFileAtomic(path, new Uint8Array(await response.arrayBuffer()));
  }));
  const spec = defaultPipelineSpec(".", "web", false);
  const d = dpoSettings(s);
  const run = {
    ...spec,
    tokenOptions: { maxLength: s["max-length"], maxPromptLength: s["max-prompt-length"] },
    dpo: { ...spec.dpo, ...d, loop: { ...spec.dpo.loop, ...d.loop } },
    evalPrompts: undefined,
  };
  await runPipeline(store, backend, run, pipelineHooks(signal));
  const paths = runPaths(run.runDir);
  return {
    dpoDir: paths.dpo,
    downloads: [
      ...await folderDownloads(store, paths.dpo, "dpo"),
      ...await folderDownloads(store, paths.sft, "sft"),
      { id: "ref-cache", name: "ref_cache.bin", bytes: await store.readFile(paths.refCache) },
    ],
  };
}

async function runCustom(
  store: MemoryFileStore,
  backend: GpuBackend,
  inputs: CustomInputs,
  s: WebSettings,
  signal: AbortSignal,
) {
  const hooks = pipelineHooks(signal);
  const timed = announced(hooks);
  await store.mkdirp("model");
  await store.mkdirp("data");
  for (const file of inputs.model) {
    await store.writeFileAtomic(
      joinPath("model", basename(file.name)),
      new Uint8Array(await file.arrayBuffer()),
    );
  }
  const data = joinPath("data", basename(inputs.dataset.name));
  await store.writeFileAtomic(data, new Uint8Array(await inputs.dataset.arrayBuffer()));
  const tokenOptions = { maxLength: s["max-length"], maxPromptLength: s["max-prompt-length"] };
  let refCache = "cache/ref_cache.bin";
  await store.mkdirp("cache");
  if (inputs.cache) {
    await store.writeFileAtomic(refCache, new Uint8Array(await inputs.cache.arrayBuffer()));
  } else {
    refCache = runPaths("runs/web").refCache;
    await timed("precompute", () =>
      runPrecompute(store, backend, {
        model: "model",
        data: { path: data },
        tokenOptions,
        output: refCache,
      }, hooks.stage("precompute")));
  }
  const outputDir = runPaths("runs/web").dpo;
  const d = dpoSettings(s);
  await timed("dpo", () =>
    runDpo(store, backend, {
      model: "model",
      data: { path: data },
      refCache,
      outputDir,
      tokenOptions,
      ...d,
      loop: { ...d.loop, evalSteps: 0 },
      overwriteOutputDir: true,
    }, hooks.stage("dpo")));
  return {
    dpoDir: outputDir,
    downloads: [
      ...await folderDownloads(store, outputDir, "dpo"),
      { id: "ref-cache", name: "ref_cache.bin", bytes: await store.readFile(refCache) },
    ],
  };
}

async function start(message: Extract<ToWorker, { type: "start" }>) {
  controller = new AbortController();
  const signal = controller.signal;
  // Hardware adapters tune their kernels once per page (the choices live in memory).
  const backend = await GpuBackend.create({ tuner: await Tuner.open(memoryStore()) });
  post({ type: "adapter", description: backend.adapterName });
  backend.ctx.device.lost.then((info) => {
    if (info.reason !== "destroyed") {
      post({
        type: "error",
        name: "DeviceLost",
        message: `the GPU device was lost (${
          info.message || info.reason
        }); reload the page to start again`,
      });
    }
  });
  const store = new MemoryFileStore({}, { copy: false });
  const { dpoDir, downloads } = message.run === "default"
    ? await runDefault(store, backend, message.baseUrl, message.settings, signal)
    : await runCustom(store, backend, message.inputs, message.settings, signal);
  const metricsJsonl = await store.readText(joinPath(dpoDir, "metrics.jsonl"));
  downloads.push({
    id: "metrics",
    name: "metrics.jsonl",
    bytes: new TextEncoder().encode(metricsJsonl),
  });
  const rows = metricsJsonl.trim().split("\n").map((l) => JSON.parse(l));
  const speeds = rows.map((r) => r.tokens_per_s).filter((v) => typeof v === "number");
  post(
    { type: "done", metricsJsonl, downloads, tokensPerSecond: speeds.at(-1) },
    downloads.map((d) => d.bytes.buffer as ArrayBuffer).filter((b, i, all) => all.indexOf(b) === i),
  );
}

scope.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.type === "cancel") {
    controller?.abort(new DOMException("cancelled", "AbortError"));
    return;
  }
  start(message).catch((error: unknown) => {
    if (controller?.signal.aborted) post({ type: "cancelled" });
    else {
      const e = error instanceof Error ? error : new Error(String(error));
      post({ type: "error", name: e.name, message: e.message });
    }
  });
};
