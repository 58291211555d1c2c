/**
 * `deno task cache-export --cache PATH --data FILE --output FILE`: the dataset's rows with TRL's
 * `ref_chosen_logps` and `ref_rejected_logps` columns added from a reference cache (Parquet or
 * JSON Lines by the output's extension), so that TRL's DPOTrainer trains on this project's
 * reference numbers instead of running a reference model.
 */

import { givenFlags, parseFlags, runMain } from "./_cli.ts";
import { COMMON_FLAGS, DATA_FLAGS, required, splitOf, tokenOptionsOf } from "./_flags.ts";
import { store } from "./_stage.ts";
import { trainEvalSplits } from "../src/data/prepare.ts";
import { exportCache } from "../src/pipeline/cache_export.ts";

const flags = parseFlags(
  "cache-export",
  "Writes the dataset's rows with TRL's ref_chosen_logps / ref_rejected_logps columns from a\n" +
    "reference cache (.parquet or .jsonl by --output's extension; the cache's identity goes in\n" +
    "the Parquet metadata or a .cache.json sidecar). Give the split flags the cache was built with.",
  {
    cache: { type: "string", help: "reference cache from deno task precompute" },
    data: { type: "string", help: "the preference dataset the cache was built from" },
    output: { type: "string", help: "file to write: .parquet or .jsonl" },
    model: {
      type: "string",
      help: "tokenizer folder (default: the reference model the cache names)",
    },
    "eval-data": { type: "string", help: "held-out file the cache also covers" },
    "eval-output": { type: "string", help: "where --eval-data's rows go" },
    "eval-fraction": {
      type: "number",
      default: 0,
      help: "fraction of --data held out (as cached)",
    },
    seed: { type: "number", default: 42, help: "seed of the held-out split" },
    ...DATA_FLAGS,
    ...COMMON_FLAGS,
  },
);

await runMain(async () => {
  // Token options default to the cache's own; any given on the command line are checked.
  const given = givenFlags(flags);
  const tokenFlags = ["max-length", "max-prompt-length", "truncation-mode"];
  const tokenOptions = tokenFlags.some((f) => given.has(f)) ? tokenOptionsOf(flags) : undefined;
  const splits = trainEvalSplits(
    splitOf(flags, required(flags, "data")),
    flags.evalData as string | undefined,
    flags.evalFraction as number,
  );
  const started = performance.now();
  const result = await exportCache(store, {
    cache: required(flags, "cache"),
    data: splits.train,
    evalData: flags.evalData ? splits.eval : undefined,
    tokenOptions,
    tokenizer: flags.model as string | undefined,
    output: required(flags, "output"),
    evalOutput: flags.evalOutput as string | undefined,
  }, (line) => console.error(line));
  const ms = performance.now() - started;
  for (const f of result.files) {
    console.error(
      `wrote ${f.path}: ${f.rows} rows, ${f.bytes} bytes` +
        (f.dropped ? ` (${f.dropped} rows the cache has no value for were left out)` : ""),
    );
  }
  if (flags.json) console.log(JSON.stringify({ ...result, ms }));
});
