/**
 * `deno task world`: regenerates the embedded world's text files (tokenizer, pretraining corpus,
 * SFT sets, held-out prompts) byte for byte from a seed. The base model is made separately by
 * `deno task pretrain`.
 */

import { parseFlags, runMain, UsageError } from "./_cli.ts";
import { DenoFileStore } from "../src/io/deno_fs.ts";
import { writeWorld } from "../src/world/world.ts";

const flags = parseFlags(
  "world",
  "Writes the world's tokenizer and datasets (corpus, SFT, held-out prompts) from a seed.",
  {
    "output-dir": { type: "string", default: "data", help: "folder to write the files into" },
    seed: { type: "number", default: 0, help: "seed of every stream" },
    "corpus-rows": { type: "number", default: 4000, help: "pretraining reviews (corpus.jsonl)" },
    "sft-rows": { type: "number", default: 1000, help: "prompt-completion rows (sft.jsonl)" },
    "sft-eval-rows": { type: "number", default: 100, help: "rows of sft_eval.jsonl" },
    "eval-prompts": { type: "number", default: 64, help: "held-out prompts (prompts_eval.jsonl)" },
    json: { type: "boolean", default: false, help: "print the written files as JSON on stdout" },
  },
);

await runMain(async () => {
  const counts = ["corpusRows", "sftRows", "sftEvalRows", "evalPrompts", "seed"] as const;
  for (const key of counts) {
    const value = Number(flags[key]);
    if (!Number.isInteger(value) || value < (key === "seed" ? 0 : 1)) {
      const flag = key.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
      throw new UsageError(
        `--${flag}: expected a ${
          key === "seed" ? "non-negative" : "positive"
        } integer, got ${value}`,
      );
    }
  }
  const dir = String(flags.outputDir);
  const written = await writeWorld(new DenoFileStore(), dir, {
    seed: Number(flags.seed),
    corpusRows: Number(flags.corpusRows),
    sftRows: Number(flags.sftRows),
    sftEvalRows: Number(flags.sftEvalRows),
    evalPrompts: Number(flags.evalPrompts),
  });
  const files: Record<string, number> = {};
  for (const name of written) files[name] = (await Deno.stat(`${dir}/${name}`)).size;
  for (const [name, size] of Object.entries(files)) {
    console.error(`wrote ${dir}/${name} (${size} bytes)`);
  }
  if (flags.json) console.log(JSON.stringify({ outputDir: dir, seed: flags.seed, files }));
});
