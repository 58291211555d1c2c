/**
 * Builds the web app (web/) into a folder of static files: index.html, main.js and worker.js
 * bundled by Deno's own bundler for the browser, and the embedded default's files under data/.
 * Any static host serves the folder; it needs no special headers (no SharedArrayBuffer, so no
 * cross-origin isolation), only a secure context (https or localhost) for WebGPU.
 */

import { DEFAULT_FILES } from "../web/protocol.ts";

const root = new URL("../", import.meta.url).pathname;

/** Bundles one entry point for the browser into `out`; throws with Deno's message on failure. */
async function bundle(entry: string, out: string): Promise<void> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--platform", "browser", "--minify", "-o", out, entry],
    cwd: root,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(`deno bundle ${entry} failed:\n${new TextDecoder().decode(stderr)}`);
  }
}

/** Sizes of the built files in bytes, whole and gzipped. */
export interface BuildSizes {
  [file: string]: { bytes: number; gzip: number };
}

async function gzipSize(bytes: Uint8Array): Promise<number> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
  return (await new Response(stream).arrayBuffer()).byteLength;
}

/** Writes the app into `dir` (created; files replaced); returns the script sizes. */
export async function buildWeb(dir: string): Promise<BuildSizes> {
  await Deno.mkdir(`${dir}/data/base`, { recursive: true });
  await bundle("web/main.ts", `${dir}/main.js`);
  await bundle("web/worker.ts", `${dir}/worker.js`);
  await Deno.copyFile(`${root}web/index.html`, `${dir}/index.html`);
  for (const f of DEFAULT_FILES) await Deno.copyFile(`${root}data/${f}`, `${dir}/data/${f}`);
  const sizes: BuildSizes = {};
  for (const f of ["main.js", "worker.js"]) {
    const bytes = await Deno.readFile(`${dir}/${f}`);
    sizes[f] = { bytes: bytes.length, gzip: await gzipSize(bytes) };
  }
  return sizes;
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  json: "application/json",
  jsonl: "application/jsonl",
  png: "image/png",
};

/** Serves `dir` on `hostname:port` (0 = any free port); resolves with the URL and a stop function. */
export function serveDir(
  dir: string,
  port = 0,
  hostname = "127.0.0.1",
): { url: string; close: () => Promise<void> } {
  const server = Deno.serve({ hostname, port, onListen: () => {} }, async (request) => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    if (path.split("/").includes("..")) return new Response("bad path", { status: 400 });
    const file = path.endsWith("/") ? `${path}index.html` : path;
    try {
      const bytes = await Deno.readFile(`${dir}${file}`);
      const ext = file.slice(file.lastIndexOf(".") + 1);
      return new Response(bytes, {
        headers: {
          "content-type": TYPES[ext] ?? "application/octet-stream",
          "cache-control": "no-cache",
        },
      });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  return { url: `http://${hostname}:${server.addr.port}/`, close: () => server.shutdown() };
}
