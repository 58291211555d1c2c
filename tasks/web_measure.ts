/**
 * `deno task web-measure`: the browser against Deno on this machine, in one run. Tokens per second
 * of the DPO step (the embedded default, same SFT model, cache and settings) in headless Chromium
 * (WebGPU on SwiftShader) and in Deno (`deno task dpo`, WebGPU on llvmpipe); first-use shader
 * compile time of the whole catalog in each (modules and pipelines); the bundle's size. Prints
 * JSON and writes it to --out (default docs/bench/web_swiftshader_vs_llvmpipe.json).
 */

import { parseFlags, runMain } from "./_cli.ts";
import { buildWeb, serveDir } from "./_web_build.ts";
import { launchWebGpuChromium } from "./_chromium.ts";
import { compileShaders } from "../src/gpu/compile_check.ts";
import { shaderCatalog } from "../src/gpu/shader_catalog.ts";
import { defaultRunCliArgs, defaultSettings } from "../web/params.ts";

const flags = parseFlags("web-measure", "Measures the web app against Deno on this machine.", {
  steps: { type: "number", default: 20, help: "DPO steps in each" },
  out: {
    type: "string",
    default: "docs/bench/web_swiftshader_vs_llvmpipe.json",
    help: "JSON output",
  },
});

await runMain(async () => {
  const steps = Number(flags.steps);
  const logging = Math.max(1, Math.floor(steps / 2));
  const site = await Deno.makeTempDir({ prefix: "dpo-web-measure-" });
  const work = await Deno.makeTempDir({ prefix: "dpo-web-measure-run-" });
  try {
    const bundle = await buildWeb(site);
    const server = serveDir(site);
    const browser = await launchWebGpuChromium();
    const shaders = shaderCatalog().map(({ name, wgsl }) => ({ name, wgsl }));
    let chromium;
    try {
      const page = await browser.newPage();
      await page.goto(server.url);
      console.error("compiling the shader catalog in Chromium...");
      const compiled = await page.evaluate(compileShaders, { shaders, pipelines: "all" as const });
      console.error(`running the default for ${steps} DPO steps in Chromium...`);
      await page.goto(`${server.url}?run=default&max-steps=${steps}&logging-steps=${logging}`);
      await page.waitForFunction(
        () => ["done", "error"].includes(document.body.dataset.state ?? ""),
        null,
        {
          timeout: 40 * 60_000,
          polling: 1000,
        },
      );
      const error = await page.locator("#error").textContent();
      if (error) throw new Error(`the page failed: ${error}`);
      const rows = (await page.locator("#metrics").textContent())!.trim().split("\n").map((l) =>
        JSON.parse(l)
      );
      await Deno.mkdir(`${work}/sft`);
      for (
        const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
      ) {
        const [d] = await Promise.all([
          page.waitForEvent("download"),
          page.locator(`[id="download-sft-${f}"]`).click(),
        ]);
        await d.saveAs(`${work}/sft/${f}`);
      }
      const [d] = await Promise.all([
        page.waitForEvent("download"),
        page.locator(`[id="download-ref-cache"]`).click(),
      ]);
      await d.saveAs(`${work}/ref_cache.bin`);
      chromium = { adapter: compiled.adapter, rows, compiled: compiled.results };
    } finally {
      await browser.close();
      await server.close();
    }
    console.error("compiling the shader catalog in Deno...");
    const deno = await compileShaders({ shaders, pipelines: "all" as const });
    console.error(`running ${steps} DPO steps in Deno...`);
    const args = [
      "run",
      "--unstable-webgpu",
      "-A",
      "tasks/dpo.ts",
      "--model",
      `${work}/sft`,
      "--ref-cache",
      `${work}/ref_cache.bin`,
      ...defaultRunCliArgs({ ...defaultSettings(), "max-steps": steps, "logging-steps": logging }),
      "--output-dir",
      `${work}/dpo`,
    ]; // deno-fmt-ignore
    const { code, stderr } = await new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "piped" }).output();
    if (code !== 0) throw new Error(new TextDecoder().decode(stderr));
    const denoRows = (await Deno.readTextFile(`${work}/dpo/metrics.jsonl`)).trim().split("\n").map((
      l,
    ) => JSON.parse(l));
    // The second logging window: shaders compiled, steady state.
    const speed = (rows: Record<string, number>[]) =>
      rows.filter((r) => "tokens_per_s" in r).at(-1)!.tokens_per_s;
    const total = (r: { moduleMs: number; pipelineMs: number }[]) =>
      Math.round(r.reduce((s, x) => s + x.moduleMs + x.pipelineMs, 0));
    const result = {
      date: new Date().toISOString(),
      machine: `${navigator.hardwareConcurrency} CPU threads, no GPU`,
      steps,
      dpo_tokens_per_s: {
        chromium_swiftshader: speed(chromium.rows),
        deno_llvmpipe: speed(denoRows),
      },
      chromium_over_deno: speed(chromium.rows) / speed(denoRows),
      shader_catalog_first_compile_ms: {
        shaders: shaders.length,
        chromium_swiftshader: total(chromium.compiled),
        deno_llvmpipe: total(deno.results),
      },
      bundle_bytes: bundle,
    };
    const json = JSON.stringify(result, null, 2);
    console.log(json);
    await Deno.writeTextFile(String(flags.out), json + "\n");
  } finally {
    await Deno.remove(site, { recursive: true });
    await Deno.remove(work, { recursive: true });
  }
});
