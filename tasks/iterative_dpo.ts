/**
 * `deno task iterative-dpo --model SFT --prompts FILE --output-dir DIR`: DPO in rounds on the
 * policy's own samples. Each round samples K completions per prompt from the current policy,
 * labels best against worst with the reward (ties dropped), precomputes the reference cache of
 * that round's pairs (the SFT model, or with --ref-update round the round's starting policy) and
 * trains one round of DPO loading only the policy (src/pipeline/iterative.ts).
 */

import { parseFlags, runMain, UsageError } from "./_cli.ts";
import { mainRounds, roundsFlags } from "./_rounds.ts";

const flags = parseFlags(
  "iterative-dpo",
  "Iterative DPO: rounds of sample -> label with a reward -> precompute -> DPO.",
  roundsFlags({
    rounds: { type: "number", default: 3, help: "rounds of sampling and training" },
    "ref-update": {
      type: "string",
      default: "none",
      choices: ["none", "round"],
      help: "none: the reference stays --model; round: each round's starting policy",
    },
  }),
);

await runMain(async () => {
  const rounds = Number(flags.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new UsageError(`--rounds: expected an integer >= 1, got ${flags.rounds}`);
  }
  await mainRounds(
    "iterative-dpo",
    flags,
    { kind: "best-worst" },
    rounds,
    flags.refUpdate as "none" | "round",
  );
});
