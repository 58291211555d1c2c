/**
 * The rooms of the house (DESIGN.md, docs/architecture.md): a module imports only from its own
 * room and the rooms below it in the data flow. Reads every import of src/, tasks/ and web/ and
 * fails on any arrow that runs back up, naming the file, the line and the rule it breaks.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** What each room may import besides itself; the order of the data flow, top to bottom. */
export const ALLOWED: Record<string, readonly string[]> = {
  tasks: [
    "web",
    "pipeline",
    "eval",
    "train",
    "model",
    "gpu",
    "cpu",
    "backend",
    "cache",
    "data",
    "world",
    "io",
    "mod",
  ],
  web: [
    "pipeline",
    "eval",
    "train",
    "model",
    "gpu",
    "cpu",
    "backend",
    "cache",
    "data",
    "world",
    "io",
    "mod",
  ],
  pipeline: ["eval", "train", "model", "gpu", "cpu", "backend", "cache", "data", "world", "io"],
  eval: ["train", "model", "backend", "cache", "data", "world", "io"],
  train: ["model", "backend", "cache", "data", "world", "io"],
  model: ["backend", "cache", "data", "world", "io"],
  gpu: ["backend", "cache", "data", "io"],
  cpu: ["backend", "cache", "data", "io"],
  backend: ["cache", "data", "io"],
  cache: ["data", "io"],
  world: ["data", "io"],
  data: ["io"],
  io: [],
};

/** The room of a repository-relative path: `src/<room>/...`, `tasks/...`, `web/...`, `mod.ts`. */
export function roomOf(path: string): string | undefined {
  if (path === "mod.ts") return "mod";
  const parts = path.split("/");
  if (parts[0] === "src") return parts.length > 2 ? parts[1] : undefined;
  if (parts[0] === "tasks" || parts[0] === "web") return parts[0];
  return undefined;
}

/** Relative import specifiers of a module's source, with their line numbers. */
export function relativeImports(source: string): Array<{ specifier: string; line: number }> {
  const out: Array<{ specifier: string; line: number }> = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["'](\.{1,2}\/[^"']+)["']/gm;
  for (const m of source.matchAll(pattern)) {
    out.push({ specifier: m[1], line: source.slice(0, m.index).split("\n").length });
  }
  return out;
}

/** Normalises `dir/../x/./y` to a repository-relative path. */
function resolve(fromFile: string, specifier: string): string {
  const parts = fromFile.split("/").slice(0, -1);
  for (const p of specifier.split("/")) {
    if (p === "..") parts.pop();
    else if (p !== ".") parts.push(p);
  }
  return parts.join("/");
}

/** Every import that runs back up the data flow, as `file:line -> target (rule)`. */
export function backArrows(files: ReadonlyArray<{ path: string; source: string }>): string[] {
  const problems: string[] = [];
  for (const { path, source } of files) {
    const from = roomOf(path);
    if (!from || from === "mod") continue;
    for (const { specifier, line } of relativeImports(source)) {
      const target = resolve(path, specifier);
      const to = roomOf(target);
      if (to === undefined) {
        problems.push(`${path}:${line} -> ${target} (outside the rooms)`);
      } else if (to !== from && !ALLOWED[from]?.includes(to)) {
        problems.push(
          `${path}:${line} -> ${target} (${from} may import only ${
            ALLOWED[from]?.join(", ") || "itself"
          })`,
        );
      }
    }
  }
  return problems;
}

async function sources(dir: string): Promise<Array<{ path: string; source: string }>> {
  const out: Array<{ path: string; source: string }> = [];
  try {
    for await (const entry of Deno.readDir(ROOT + dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) out.push(...await sources(path));
      else if (/\.tsx?$/.test(entry.name)) {
        out.push({ path, source: await Deno.readTextFile(ROOT + path) });
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return out;
}

Deno.test("no module imports from a room above it in the data flow", async () => {
  const files = [...await sources("src"), ...await sources("tasks"), ...await sources("web")];
  assert.ok(files.length > 80, `read only ${files.length} modules`);
  const rooms = new Set(files.map((f) => roomOf(f.path)));
  for (const room of Object.keys(ALLOWED)) {
    if (room !== "web") assert.ok(rooms.has(room), `no module found in room ${room}`);
  }
  for (const f of files) {
    assert.ok(roomOf(f.path), `${f.path} lies outside every room (src/<room>/, tasks/, web/)`);
  }
  const problems = backArrows(files);
  assert.deepEqual(problems, [], `imports that run back up the data flow:\n${problems.join("\n")}`);
});

Deno.test("the import check catches a back-arrow, a sibling backend and a dynamic import", () => {
  const problems = backArrows([
    { path: "src/eval/x.ts", source: 'import { a } from "../pipeline/y.ts";' },
    { path: "src/gpu/k/x.ts", source: 'import type { b } from "../../cpu/y.ts";' },
    { path: "src/model/x.ts", source: 'const m = await import("../train/y.ts");' },
    { path: "src/train/x.ts", source: 'export { c } from "../model/y.ts";\nimport "../io/z.ts";' },
    { path: "src/io/x.ts", source: 'import { d } from "./y.ts";' },
  ]);
  assert.deepEqual(problems.map((p) => p.split(" (")[0]), [
    "src/eval/x.ts:1 -> src/pipeline/y.ts",
    "src/gpu/k/x.ts:1 -> src/cpu/y.ts",
    "src/model/x.ts:1 -> src/train/y.ts",
  ]);
});
