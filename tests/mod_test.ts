/**
 * The edge-safe core: nothing reachable from mod.ts uses `Deno.*` or `node:*` (type-only imports
 * count), so the library runs in browsers and edge workers. Comment lines may show Deno usage.
 */

import { fileURLToPath } from "node:url";

interface ModuleInfo {
  specifier: string;
  dependencies?: Array<
    { specifier: string; code?: { specifier?: string }; type?: { specifier?: string } }
  >;
}

Deno.test("nothing reachable from mod.ts uses Deno.* or node:*", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL("../mod.ts", import.meta.url).href],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) throw new Error(new TextDecoder().decode(output.stderr));
  const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as { modules: ModuleInfo[] };
  const local = graph.modules.filter((m) => m.specifier.startsWith("file:"));
  if (local.length < 20) throw new Error(`only ${local.length} local modules in the graph`);
  const problems: string[] = [];
  for (const m of local) {
    for (const d of m.dependencies ?? []) {
      if (d.specifier.startsWith("node:")) problems.push(`${m.specifier}: imports ${d.specifier}`);
    }
    const lines = (await Deno.readTextFile(fileURLToPath(m.specifier))).split("\n");
    lines.forEach((line, i) => {
      const code = line.trim();
      if (code.startsWith("//") || code.startsWith("*") || code.startsWith("/*")) return;
      if (/\bDeno\./.test(code) || /["']node:/.test(code)) {
        problems.push(`${m.specifier}:${i + 1}: ${code}`);
      }
    });
  }
  if (problems.length) throw new Error(`not edge-safe:\n${problems.join("\n")}`);
});
