/**
 * The web app (web/, built by `deno task web --build`) in headless Chromium with WebGPU on
 * SwiftShader: `?run=default&max-steps=3&logging-steps=1` runs SFT, precompute and three DPO
 * steps; its first step's log-probs equal one step of the CLI's DPO stage from the page's own SFT
 * model and cache, its loss is ln 2, its trained model matches the CPU backend's after the same
 * steps, and a screenshot taken while it trains shows the chart. Bad input and a browser without
 * WebGPU are shown in the page; cancel stops a run.
 */

import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { buildWeb, serveDir } from "../../tasks/_web_build.ts";
import { readSafetensors } from "../../src/io/safetensors.ts";
import { browserTest } from "../browser_helpers.ts";
import { webGpuTest } from "./chromium.ts";
import { defaultRunCliArgs, defaultSettings } from "../../web/params.ts";
import { assertClose } from "../helpers.ts";

const site = await Deno.makeTempDir({ prefix: "dpo-web-site-" });
await buildWeb(site);
const work = await Deno.makeTempDir({ prefix: "dpo-web-test-" });
globalThis.addEventListener("unload", () => {
  for (const d of [site, work]) Deno.removeSync(d, { recursive: true });
});
const serveSite = () => serveDir(site);

async function waitForState(page: Page, states: string[], timeoutMs: number): Promise<string> {
  await page.waitForFunction(
    (s) => s.includes(document.body.dataset.state ?? ""),
    states,
    { timeout: timeoutMs, polling: 500 },
  );
  return await page.evaluate(() => document.body.dataset.state!);
}

async function save(page: Page, id: string, path: string): Promise<void> {
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.locator(`[id="download-${id}"]`).click(),
  ]);
  await download.saveAs(path);
}

async function cli(args: string[]): Promise<Record<string, number>> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-webgpu", "-A", "tasks/dpo.ts", ...args, "--json"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(stderr);
  assert.equal(code, 0, err);
  return JSON.parse(new TextDecoder().decode(stdout).trim().split("\n").at(-1)!);
}

/** Blue pixels of the loss chart's line (the chart is drawn, not blank). */
const lossLinePixels = (page: Page) =>
  page.evaluate(() => {
    const c = document.getElementById("chart-loss") as HTMLCanvasElement;
    const d = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 200 && d[i] < 80) n++;
    return n;
  });

/** The CLI flags of the page's DPO stage for `steps` steps, logging every step. */
const dpoArgs = (steps: number) =>
  defaultRunCliArgs({ ...defaultSettings(), "max-steps": steps, "logging-steps": 1 });

webGpuTest(
  "the page trains the default; its logps, loss and weights match the CLI's",
  async (page, url) => {
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${url}?run=default&max-steps=3&logging-steps=1`);
    // A screenshot while DPO trains: the first metrics row is drawn, the run still going.
    await page.waitForFunction(
      () => document.getElementById("metrics")!.textContent!.length > 0,
      null,
      {
        timeout: 20 * 60_000,
        polling: 100,
      },
    );
    const shot = `${work}/training.png`;
    await page.screenshot({ path: shot, fullPage: true });
    assert((await Deno.stat(shot)).size > 10_000);
    assert(await lossLinePixels(page) > 20, "the loss chart is blank");
    assert.equal(
      await waitForState(page, ["done", "error"], 5 * 60_000),
      "done",
      await page.locator("#error").textContent() ?? "",
    );
    assert.deepEqual(errors, []);

    const rows = (await page.locator("#metrics").textContent())!.trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    const train = rows.filter((r) => "loss" in r);
    assert.deepEqual(train.map((r) => r.step), [1, 2, 3]);
    assert(Math.abs(train[0].loss - Math.LN2) < 1e-6, `step-1 loss ${train[0].loss} is not ln 2`);

    for (
      const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    ) {
      await Deno.mkdir(`${work}/sft`, { recursive: true });
      await Deno.mkdir(`${work}/dpo`, { recursive: true });
      await save(page, `sft-${f}`, `${work}/sft/${f}`);
      await save(page, `dpo-${f}`, `${work}/dpo/${f}`);
    }
    await save(page, "ref-cache", `${work}/ref_cache.bin`);
    await save(page, "metrics", `${work}/metrics.jsonl`);
    assert.equal(
      await Deno.readTextFile(`${work}/metrics.jsonl`),
      await page.locator("#metrics").textContent(),
    );

    const common = ["--model", `${work}/sft`, "--ref-cache", `${work}/ref_cache.bin`];
    const one = await cli([...common, ...dpoArgs(1), "--output-dir", `${work}/cli1`]);
    const cliRows = (await Deno.readTextFile(`${work}/cli1/metrics.jsonl`)).trim().split("\n").map((
      l,
    ) => JSON.parse(l));
    const first = cliRows.find((r) => r.step === 1 && "loss" in r);
    for (const k of ["logps/chosen", "logps/rejected", "loss"]) {
      assertClose([train[0][k]], [first[k]], { atol: 1e-5, rtol: 1e-6, label: k });
    }
    assert(one);
    await cli([...common, ...dpoArgs(3), "--device", "cpu", "--output-dir", `${work}/cpu3`]);
    const page3 = readSafetensors(await Deno.readFile(`${work}/dpo/model.safetensors`)).tensors;
    const cpu3 = readSafetensors(await Deno.readFile(`${work}/cpu3/model.safetensors`)).tensors;
    assert.deepEqual([...page3.keys()].sort(), [...cpu3.keys()].sort());
    for (const [name, t] of cpu3) {
      assertClose(page3.get(name)!.data, t.data, { atol: 2e-5, rtol: 1e-4, label: name });
    }
  },
  serveSite,
);

webGpuTest(
  "a broken dataset row and a folder without tokenizer.json show in the page",
  async (page, url) => {
    await page.goto(url);
    await waitForState(page, ["idle"], 30_000);
    // A picked folder: one without tokenizer.json, then the whole base model.
    const folder = async (name: string, files: string[]) => {
      await Deno.mkdir(`${work}/${name}`, { recursive: true });
      for (const f of files) await Deno.copyFile(`data/base/${f}`, `${work}/${name}/${f}`);
      return `${work}/${name}`;
    };
    const files = ["config.json", "model.safetensors", "tokenizer_config.json"];
    await page.setInputFiles("#model-folder", await folder("no_tokenizer", files));
    await page.setInputFiles("#dataset", "data/preferences_eval.jsonl");
    await page.click("#run-custom");
    assert.match((await page.locator("#error").textContent())!, /tokenizer\.json missing/);
    const lines = (await Deno.readTextFile("data/preferences_eval.jsonl")).split("\n");
    lines[2] = '{"prompt": "hi", "chosen": 3}';
    const broken = `${work}/broken.jsonl`;
    await Deno.writeTextFile(broken, lines.join("\n"));
    await page.setInputFiles("#model-folder", await folder("base", [...files, "tokenizer.json"]));
    await page.setInputFiles("#dataset", broken);
    await page.click("#run-custom");
    assert.equal(await waitForState(page, ["error", "done"], 5 * 60_000), "error");
    assert.match((await page.locator("#error").textContent())!, /broken\.jsonl:3: /);
  },
  serveSite,
);

webGpuTest("cancel stops a run in the page", async (page, url) => {
  await page.goto(`${url}?run=default`);
  await page.waitForFunction(
    () => /sft \d+\/\d+/.test(document.getElementById("stage")!.textContent!),
    null,
    { timeout: 5 * 60_000 },
  );
  await page.click("#cancel");
  assert.equal(await waitForState(page, ["cancelled", "error", "done"], 60_000), "cancelled");
}, serveSite);

browserTest("a browser without WebGPU is told so in the page", async (page) => {
  const server = serveSite();
  try {
    await page.goto(server.url); // the report tests' Chromium: --disable-gpu, no adapter
    await page.waitForFunction(() => document.getElementById("error")!.textContent!.length > 0);
    assert.match((await page.locator("#error").textContent())!, /no WebGPU/);
    assert(await page.locator("#run-default").isDisabled());
  } finally {
    await server.close();
  }
});
