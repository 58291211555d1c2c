/**
 * The shader catalog (src/gpu/shader_catalog.ts) in Deno: every shader compiles on this adapter
 * with no compiler message, every shader the model compiles is one of the catalog's (so the
 * catalog cannot fall behind the kernels), and no float literal lies outside f32's range (the
 * error Chromium's compiler makes fatal and naga lets through; tests/web checks Tint itself).
 */

import assert from "node:assert/strict";
import { gpuTest } from "../helpers.ts";
import { shaderCatalog } from "../../src/gpu/shader_catalog.ts";
import { compileShaders } from "../../src/gpu/compile_check.ts";
import { fixtureModel, FIXTURES, forwardBackward, readFixture } from "../model/fixture.ts";

const F32_MAX = 3.4028234663852886e38;

Deno.test("the catalog names each shader once and holds no float literal beyond f32", () => {
  const catalog = shaderCatalog();
  assert.deepEqual(new Set(catalog.map((s) => s.name)).size, catalog.length);
  const decimal = /(?<![\w.])(\d+\.\d*|\.\d+|\d+)[eE][+-]?\d+f?/g;
  const bad: string[] = [];
  for (const { name, wgsl } of catalog) {
    for (const m of wgsl.matchAll(decimal)) {
      if (Math.abs(Number(m[0].replace(/f$/, ""))) > F32_MAX) bad.push(`${name}: ${m[0]}`);
    }
  }
  assert.deepEqual(bad, []);
  // The check sees the literal that Chromium rejected.
  const old = [..."var m = -3.4028235e38;".matchAll(decimal)].map((m) => Number(m[0]));
  assert(old.length === 1 && Math.abs(old[0]) > F32_MAX);
});

gpuTest("every catalog shader compiles on this adapter with no compiler message", async () => {
  const shaders = shaderCatalog().map(({ name, wgsl }) => ({ name, wgsl }));
  // Every module is validated; pipelines are built for all but the 320 workgroup-tiled matmul
  // variants, which llvmpipe takes minutes each to compile (tests/gpu/matmul_tiled_test.ts builds
  // and runs one variant per candidate, transpose and load width).
  const pipelines = shaders.map((s) => s.name).filter((name) => !name.includes("_tiled"));
  const { results } = await compileShaders({ shaders, pipelines });
  assert.deepEqual(results.length, shaders.length);
  assert.deepEqual(results.filter((r) => r.problems.length > 0), []);
});

gpuTest("every shader the model compiles is in the catalog, text for text", async (gpu) => {
  for (const name of FIXTURES) {
    const { model } = fixtureModel(gpu, await readFixture(name));
    await forwardBackward(model, [1, 1]);
  }
  const catalog = new Map(shaderCatalog().map((s) => [s.name, s.wgsl]));
  const compiled = [...gpu.ctx.compiledShaders()];
  assert(compiled.length >= 10, `only ${compiled.length} shaders compiled`);
  for (const [name, wgsl] of compiled) {
    assert(catalog.has(name), `${name} is compiled by the engine but missing from the catalog`);
    assert(catalog.get(name) === wgsl, `${name}: the catalog's text differs from the engine's`);
  }
});
