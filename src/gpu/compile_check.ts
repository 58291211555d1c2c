/**
 * Compiles shaders on a page's WebGPU device: each module's compilation messages (errors and
 * warnings) and any validation error of its module or pipeline, with the time each took. The same
 * function runs in Deno (on `navigator.gpu` directly) and in Chromium (through page.evaluate), so
 * both compilers see exactly the same calls.
 *
 * @module
 */

/** One shader's outcome: every compiler message and validation error, and its timings. */
export interface CompileResult {
  name: string;
  problems: string[];
  moduleMs: number;
  pipelineMs: number;
  /** Not compiled: it needs `shader-f16` or `subgroups` (`enable ...;`) and the adapter lacks it. */
  skipped?: boolean;
}

/**
 * Compiles each of `shaders`: a shader module (with its compilation info) and, where `pipelines`
 * holds its name or is `"all"`, a compute pipeline. Self-contained (no imports, no closures) so
 * that playwright can ship it to a page as source.
 */
export async function compileShaders(
  { shaders, pipelines }: {
    shaders: { name: string; wgsl: string }[];
    pipelines: string[] | "all";
  },
): Promise<{ adapter: string; results: CompileResult[] }> {
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error("no WebGPU adapter");
  // shader-f16 and subgroups where offered, as the engine's device does (src/gpu/device.ts).
  const f16 = adapter.features.has("shader-f16");
  const subgroups = adapter.features.has("subgroups" as GPUFeatureName);
  const requiredFeatures = [
    ...(f16 ? ["shader-f16"] : []),
    ...(subgroups ? ["subgroups"] : []),
  ] as GPUFeatureName[];
  const device = await adapter.requestDevice({ requiredFeatures });
  const results: CompileResult[] = [];
  for (const { name, wgsl } of shaders) {
    const lacks = (!f16 && wgsl.startsWith("enable f16;")) ||
      (!subgroups && wgsl.startsWith("enable subgroups;"));
    if (lacks) {
      results.push({ name, problems: [], moduleMs: 0, pipelineMs: 0, skipped: true });
      continue;
    }
    const problems: string[] = [];
    let t = performance.now();
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ code: wgsl, label: name });
    const info = await module.getCompilationInfo();
    for (const m of info.messages) {
      problems.push(`${m.type} ${m.lineNum}:${m.linePos}: ${m.message}`);
    }
    const moduleError = await device.popErrorScope();
    if (moduleError) problems.push(`module: ${moduleError.message}`);
    const moduleMs = performance.now() - t;
    t = performance.now();
    if (pipelines === "all" || pipelines.includes(name)) {
      device.pushErrorScope("validation");
      try {
        await device.createComputePipelineAsync({
          label: name,
          layout: "auto",
          compute: { module, entryPoint: "main" },
        });
      } catch (e) {
        problems.push(`pipeline: ${(e as Error).message}`);
      }
      const pipelineError = await device.popErrorScope();
      if (pipelineError) problems.push(`pipeline: ${pipelineError.message}`);
    }
    results.push({ name, problems, moduleMs, pipelineMs: performance.now() - t });
  }
  const i = adapter.info;
  device.destroy();
  return { adapter: `${i.vendor} ${i.architecture} ${i.description}`.trim(), results };
}
