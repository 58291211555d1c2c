/**
 * `deno task web`: builds the web app and serves it on localhost (the URL is printed); open it in
 * a browser with WebGPU to train DPO in the tab. `--build DIR` only writes the static files, for
 * any static host.
 */

import { parseFlags, runMain } from "./_cli.ts";
import { buildWeb, serveDir } from "./_web_build.ts";

const flags = parseFlags(
  "web",
  "Builds the browser app (web/) and serves it on localhost; --build DIR writes the static files.",
  {
    build: { type: "string", help: "write the static site to DIR and exit (no server)" },
    port: { type: "number", default: 8000, help: "port to serve on" },
  },
);

await runMain(async () => {
  const dir = (flags.build as string | undefined) ?? await Deno.makeTempDir({ prefix: "dpo-web-" });
  const sizes = await buildWeb(dir);
  const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;
  for (const [f, s] of Object.entries(sizes)) {
    console.error(`${f}: ${kib(s.bytes)} (${kib(s.gzip)} gzipped)`);
  }
  if (flags.build) {
    console.error(
      `static site in ${dir}: serve it over https or on localhost (WebGPU needs a secure context)`,
    );
    return;
  }
  const { url } = serveDir(dir, Number(flags.port));
  console.log(`DPO on WebGPU: open ${url} (Ctrl-C stops)`);
  console.log(`  no clicks: ${url}?run=default&max-steps=3&logging-steps=1`);
});
