/**
 * The page: settings under the command line's names, the embedded default or the user's own model
 * and dataset, a worker that trains (web/worker.ts), live charts, progress with ETA, cancel, and
 * the trained files to download. `document.body.dataset.state` says idle / running / done /
 * cancelled / error, for scripts that drive the page.
 *
 * @module
 */

import {
  defaultSettings,
  FIELDS,
  parseSettings,
  WEB_LOSS_TYPES,
  type WebSettings,
} from "./params.ts";
import { drawLineChart } from "./chart.ts";
import type { CustomInputs, FromWorker, ToWorker } from "./protocol.ts";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const state = (s: string) => (document.body.dataset.state = s);
const CHARTS = {
  loss: ["chart-loss", "loss"],
  "rewards/accuracies": ["chart-accuracies", "rewards/accuracies"],
  "rewards/margins": ["chart-margins", "rewards/margins"],
} as const;

let worker: Worker | undefined;
let series: Record<string, [number, number][]> = {};
let stageStart = 0;

function showError(message: string): void {
  $("error").textContent = message;
  state("error");
}

function buildForm(values: WebSettings): void {
  const box = $("settings");
  for (const name of Object.keys(FIELDS) as (keyof WebSettings)[]) {
    const label = document.createElement("label");
    label.textContent = `--${name} `;
    let input: HTMLInputElement | HTMLSelectElement;
    if (FIELDS[name] === "loss") {
      input = document.createElement("select");
      for (const t of WEB_LOSS_TYPES) input.add(new Option(t, t));
    } else {
      input = document.createElement("input");
      input.type = "number";
      input.step = "any";
    }
    input.id = `f-${name}`;
    input.name = name;
    input.value = String(values[name]);
    label.append(input);
    box.append(label);
  }
}

function formSettings(): WebSettings {
  const pairs = (Object.keys(FIELDS) as string[]).map((n) =>
    [n, ($(`f-${n}`) as HTMLInputElement).value] as [string, string]
  );
  return parseSettings(pairs);
}

function drawCharts(): void {
  for (const [key, [id, title]] of Object.entries(CHARTS)) {
    drawLineChart($<HTMLCanvasElement>(id), title, series[key] ?? []);
  }
}

function onMessage(m: FromWorker): void {
  switch (m.type) {
    case "adapter":
      $("adapter").textContent = `WebGPU adapter: ${m.description}`;
      break;
    case "stage":
      if (m.event === "start") stageStart = performance.now();
      $("stage").textContent = m.event === "start"
        ? `${m.stage}…`
        : `${m.stage} ${
          m.event === "skipped" ? "up to date: skipped" : `done in ${m.seconds?.toFixed(1)} s`
        }`;
      $("log").textContent += `${$("stage").textContent}\n`;
      break;
    case "progress": {
      const bar = $<HTMLProgressElement>("progress");
      bar.max = m.total;
      bar.value = m.done;
      const elapsed = (performance.now() - stageStart) / 1000;
      const eta = m.done > 0 ? (elapsed / m.done) * (m.total - m.done) : NaN;
      $("stage").textContent = `${m.stage} ${m.done}/${m.total}`;
      $("eta").textContent = Number.isFinite(eta) ? `ETA ${Math.ceil(eta)} s` : "";
      break;
    }
    case "log":
      $("log").textContent += m.message + "\n";
      break;
    case "metrics":
      if (m.stage !== "dpo") break;
      $("metrics").textContent += JSON.stringify(m.row) + "\n";
      for (const key of Object.keys(CHARTS)) {
        if (typeof m.row[key] === "number") (series[key] ??= []).push([m.row.step, m.row[key]]);
      }
      drawCharts();
      break;
    case "done": {
      $("metrics").textContent = m.metricsJsonl;
      const box = $("downloads");
      box.textContent = "Download: ";
      for (const d of m.downloads) {
        const a = document.createElement("a");
        a.id = `download-${d.id}`;
        a.download = d.name;
        a.href = URL.createObjectURL(new Blob([d.bytes as BlobPart]));
        a.textContent = d.id;
        box.append(a);
      }
      const speed = m.tokensPerSecond ? `, ${m.tokensPerSecond.toFixed(0)} tokens/s` : "";
      $("stage").textContent = `done${speed}`;
      $("eta").textContent = "";
      finish("done");
      break;
    }
    case "cancelled":
      $("stage").textContent = "cancelled";
      finish("cancelled");
      break;
    case "error":
      showError(m.message);
      finish("error");
  }
}

function finish(s: string): void {
  worker?.terminate();
  worker = undefined;
  $<HTMLButtonElement>("cancel").disabled = true;
  for (const id of ["run-default", "run-custom"]) $<HTMLButtonElement>(id).disabled = false;
  state(s);
}

function start(message: ToWorker): void {
  $("error").textContent = "";
  $("metrics").textContent = "";
  $("downloads").textContent = "";
  $("log").textContent = "";
  series = {};
  drawCharts();
  state("running");
  stageStart = performance.now();
  for (const id of ["run-default", "run-custom"]) $<HTMLButtonElement>(id).disabled = true;
  $<HTMLButtonElement>("cancel").disabled = false;
  worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  worker.onmessage = (e: MessageEvent<FromWorker>) => onMessage(e.data);
  worker.onerror = (e) => {
    showError(`the worker failed: ${e.message}`);
    finish("error");
  };
  worker.postMessage(message);
}

function startDefault(settings: WebSettings): void {
  start({ type: "start", run: "default", settings, baseUrl: new URL("./", location.href).href });
}

/** Sorts dropped or picked files into model files, a dataset and a cache. */
function sortFiles(files: File[], into: Partial<CustomInputs>): void {
  for (const f of files) {
    if (/\.bin$/.test(f.name)) into.cache = f;
    else if (
      /\.(jsonl|parquet)$/.test(f.name) || (/\.json$/.test(f.name) && !isModelFile(f.name))
    ) {
      into.dataset = f;
    } else (into.model ??= []).push(f);
  }
}

const isModelFile = (name: string) =>
  /^(config|generation_config|tokenizer|tokenizer_config|special_tokens_map)\.json$|safetensors/
    .test(name);

async function droppedFiles(items: DataTransferItemList): Promise<File[]> {
  const out: File[] = [];
  const walk = async (entry: FileSystemEntry): Promise<void> => {
    if (entry.isFile) {
      out.push(
        await new Promise<File>((ok, fail) => (entry as FileSystemFileEntry).file(ok, fail)),
      );
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      const entries = await new Promise<FileSystemEntry[]>((ok, fail) =>
        reader.readEntries(ok, fail)
      );
      for (const e of entries) await walk(e);
    }
  };
  const entries = [...items].map((i) => i.webkitGetAsEntry()).filter((e) => e !== null);
  for (const e of entries) await walk(e!);
  return out;
}

function startCustom(inputs: Partial<CustomInputs>): void {
  const names = (inputs.model ?? []).map((f) => f.name);
  const missing = ["config.json", "tokenizer.json"].filter((n) => !names.includes(n));
  if (!names.some((n) => n.endsWith(".safetensors"))) missing.push("model.safetensors");
  if (missing.length) {
    return showError(`model folder: ${missing.join(", ")} missing; choose an HF model folder`);
  }
  if (!inputs.dataset) {
    return showError("dataset: choose a preference dataset (JSONL, JSON, Parquet)");
  }
  start({ type: "start", run: "custom", settings: formSettings(), inputs: inputs as CustomInputs });
}

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  let settings = defaultSettings();
  try {
    settings = parseSettings(params.entries());
  } catch (e) {
    buildForm(settings);
    return showError((e as Error).message);
  }
  buildForm(settings);
  drawCharts();
  const adapter = navigator.gpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
  if (!adapter) {
    for (const id of ["run-default", "run-custom"]) $<HTMLButtonElement>(id).disabled = true;
    return showError(
      "This browser offers no WebGPU, which training needs. Use a recent Chrome or Edge " +
        "(113 or later) with hardware acceleration on, or Firefox/Safari with WebGPU enabled; " +
        "on Linux Chrome may need chrome://flags/#enable-unsafe-webgpu.",
    );
  }
  state("idle");
  $("run-default").onclick = () => {
    try {
      startDefault(formSettings());
    } catch (e) {
      showError((e as Error).message);
    }
  };
  $("run-custom").onclick = () => {
    const inputs: Partial<CustomInputs> = {};
    sortFiles([...($<HTMLInputElement>("model-folder").files ?? [])], inputs);
    const dataset = $<HTMLInputElement>("dataset").files?.[0];
    const cache = $<HTMLInputElement>("cache").files?.[0];
    if (dataset) inputs.dataset = dataset;
    if (cache) inputs.cache = cache;
    try {
      startCustom(inputs);
    } catch (e) {
      showError((e as Error).message);
    }
  };
  $("cancel").onclick = () => worker?.postMessage({ type: "cancel" } satisfies ToWorker);
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", async (e) => {
    e.preventDefault();
    if (!e.dataTransfer) return;
    const inputs: Partial<CustomInputs> = {};
    sortFiles(await droppedFiles(e.dataTransfer.items), inputs);
    try {
      startCustom(inputs);
    } catch (err) {
      showError((err as Error).message);
    }
  });
  if (params.get("run") === "default") startDefault(settings);
}

main().catch((e) => showError(String(e?.message ?? e)));
