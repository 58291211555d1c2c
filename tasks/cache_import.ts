/**
 * `deno task cache-import --data FILE --model DIR --output PATH`: a reference cache from a dataset
 * with TRL's `ref_chosen_logps` / `ref_rejected_logps` columns (written by deno task cache-export,
 * by TRL's own precompute, or by another tool), so that `deno task dpo` trains against it.
 */

import { parseFlags, runMain } from "./_cli.ts";
import { COMMON_FLAGS, DATA_FLAGS, required, splitOf, tokenOptionsOf } from "./_flags.ts";
import { store } from "./_stage.ts";
import { trainEvalSplits } from "../src/data/prepare.ts";
import { importCache } from "../src/pipeline/cache_export.ts";

const flags = parseFlags(
  "cache-import",
  "Writes a reference cache from TRL's ref_chosen_logps / ref_rejected_logps columns. --data is\n" +
    "what deno task dpo will train on; the columns come from it, or from --logps FILE (rows\n" +
    "matched by content). Give the token and split flags dpo will use.",
  {
    data: { type: "string", help: "the preference dataset dpo will train on" },
    model: { type: "string", help: "the reference model folder (tokenizer and fingerprint)" },
    adapter: { type: "string", help: "PEFT adapter on --model the reference was, if any" },
    output: { type: "string", help: "cache file to write" },
    logps: {
      type: "string",
      help: "file with the columns, if not --data itself (comma-separated for several)",
    },
    "eval-data": { type: "string", help: "held-out pairs dpo will read" },
    "eval-fraction": { type: "number", default: 0, help: "fraction of --data held out" },
    seed: { type: "number", default: 42, help: "seed of the held-out split" },
    ...DATA_FLAGS,
    ...COMMON_FLAGS,
  },
);

await runMain(async () => {
  const splits = trainEvalSplits(
    splitOf(flags, required(flags, "data")),
    flags.evalData as string | undefined,
    flags.evalFraction as number,
  );
  const output = required(flags, "output");
  const result = await importCache(store, {
    data: splits.train,
    evalData: splits.eval,
    logps: flags.logps ? String(flags.logps).split(",") : undefined,
    model: required(flags, "model"),
    adapter: flags.adapter as string | undefined,
    tokenOptions: tokenOptionsOf(flags),
    output,
  }, (line) => console.error(line));
  console.error(
    `wrote ${output} (${result.examples} pairs)` +
      (result.unused ? `; ${result.unused} rows of the columns' file matched no pair` : ""),
  );
  if (flags.json) console.log(JSON.stringify({ output, ...result }));
});
