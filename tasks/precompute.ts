/**
 * `deno task precompute`: the reference model scores every preference pair once; the per-pair
 * log-probs go to a cache file, so DPO training loads only the policy. `--shard i/n` computes one
 * slice; `--merge OUT SHARD...` joins slices.
 */

import { parseFlags, runMain, UsageError } from "./_cli.ts";
import {
  COMMON_FLAGS,
  DATA_FLAGS,
  deviceOf,
  FROZEN_FLAGS,
  maxMemoryOf,
  MEMORY_FLAGS,
  required,
  splitOf,
  tokenOptionsOf,
} from "./_flags.ts";
import { openBackend, runStage, stageHooks, store } from "./_stage.ts";
import { runPrecompute } from "../src/pipeline/precompute.ts";
import { trainEvalSplits } from "../src/data/prepare.ts";
import { decodeCache, mergeCaches } from "../src/cache/reference_cache.ts";
import { shardOf } from "./_shard.ts";

const flags = parseFlags(
  "precompute",
  "Scores every pair with the reference model and writes the reference log-prob cache.\n" +
    "Merge shards with: deno task precompute --merge --output OUT SHARD1 SHARD2 ...",
  {
    model: { type: "string", help: "reference model folder (HF layout with tokenizer files)" },
    data: { type: "string", help: "preference dataset (JSONL, JSON, Parquet, or a folder)" },
    "eval-data": { type: "string", help: "held-out pairs, cached too" },
    "eval-fraction": { type: "number", default: 0, help: "fraction of --data held out (cached)" },
    output: { type: "string", help: "cache file to write" },
    "batch-size": { type: "number", default: 16, help: "pairs per forward" },
    shard: {
      type: "string",
      help:
        "compute slice i of n, as i/n (0-based), or auto: JOB_COMPLETION_INDEX or SHARD_INDEX, " +
        "and SHARD_COUNT",
    },
    merge: { type: "boolean", default: false, help: "join the shard files given as arguments" },
    seed: { type: "number", default: 42, help: "seed of the held-out split" },
    force: { type: "boolean", default: false, help: "redo the cache even when it is up to date" },
    "use-peft": {
      type: "boolean",
      default: false,
      help: "the policy will train new LoRA adapters: their B is zero, so the reference is --model",
    },
    adapter: {
      type: "string",
      help: "PEFT adapter folder: the reference is --model plus this adapter (DPO after LoRA SFT)",
    },
    ...DATA_FLAGS,
    ...MEMORY_FLAGS,
    ...FROZEN_FLAGS,
    ...COMMON_FLAGS,
  },
  Deno.args,
  { positionals: true },
);

await runMain(async () => {
  const output = required(flags, "output");
  if (flags.merge) {
    const shards = flags._;
    if (shards.length === 0) throw new UsageError("--merge needs the shard files as arguments");
    const caches = await Promise.all(
      shards.map(async (p) => decodeCache(await store.readFile(p), p)),
    );
    await store.writeFileAtomic(output, await mergeCaches(caches, shards));
    console.error(`merged ${shards.length} shards into ${output}`);
    return;
  }
  if (flags._.length > 0) {
    throw new UsageError(`unexpected argument "${flags._[0]}" (shard files go with --merge)`);
  }
  const shard = flags.shard
    ? shardOf(String(flags.shard), (name) => Deno.env.get(name))
    : undefined;
  const splits = trainEvalSplits(
    splitOf(flags, required(flags, "data")),
    flags.evalData as string | undefined,
    flags.evalFraction as number,
  );
  const backend = await openBackend(deviceOf(flags), flags);
  const hooks = stageHooks("precompute", []);
  if (flags.usePeft && !flags.adapter) {
    console.error(
      "precompute: --use-peft with new adapters: B starts at zero, so the reference is the base " +
        `${flags.model} itself (the same cache as without --use-peft)`,
    );
  }
  const result = await runStage("precompute", output, hooks, () =>
    runPrecompute(store, backend, {
      model: required(flags, "model"),
      data: splits.train,
      evalData: splits.eval,
      tokenOptions: tokenOptionsOf(flags),
      output,
      batchSize: flags.batchSize as number,
      shard,
      force: flags.force as boolean,
      adapter: flags.adapter as string | undefined,
      maxMemory: maxMemoryOf(flags),
      frozenDtype: flags.frozenDtype as "auto" | "f32",
    }, hooks));
  if (!result.skipped) console.error(`wrote ${output} (${result.examples} pairs)`);
  if (flags.json) console.log(JSON.stringify({ output, ...result }));
});
