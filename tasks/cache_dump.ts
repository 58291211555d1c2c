/**
 * `deno task cache-dump PATH`: prints a reference cache as JSON lines on stdout, one per example
 * ({"index", "chosen_logp", "rejected_logp", "chosen_len", "rejected_len"}, index 0-based in file
 * order); the header goes to stderr.
 */

import { runMain, UsageError } from "./_cli.ts";
import { store } from "./_stage.ts";
import { decodeCache } from "../src/cache/reference_cache.ts";

await runMain(async () => {
  const args = Deno.args;
  if (args.includes("--help")) {
    console.log("deno task cache-dump PATH\n\nPrints a reference log-prob cache as JSON lines.");
    return;
  }
  if (args.length !== 1 || args[0].startsWith("--")) {
    throw new UsageError("usage: deno task cache-dump PATH (one cache file)");
  }
  const cache = await decodeCache(await store.readFile(args[0]), args[0]);
  console.error(JSON.stringify(cache.header, null, 2));
  const c = cache.columns;
  const lines: string[] = [];
  for (let i = 0; i < cache.header.end - cache.header.start; i++) {
    lines.push(JSON.stringify({
      index: cache.header.start + i,
      chosen_logp: c.chosen_logp[i],
      rejected_logp: c.rejected_logp[i],
      chosen_len: c.chosen_len[i],
      rejected_len: c.rejected_len[i],
    }));
  }
  if (lines.length) console.log(lines.join("\n"));
});
