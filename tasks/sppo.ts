/**
 * `deno task sppo --model SFT --prompts FILE --output-dir DIR`: Self-Play Preference Optimization
 * (Wu et al., ICML 2024, Algorithm 1) in rounds. Round t samples K completions per prompt from
 * π_t, estimates each one's win-rate P̂(y ≻ π_t | x) as its mean preference over the prompt's
 * other samples (the reward module's `prefer`, else the Bradley-Terry probability of the
 * rewards), pairs the highest win-rate with the lowest (both win-rates kept), caches π_t's
 * log-probs of those pairs (the reference is the previous round's policy) and trains the `sppo`
 * loss, (s_w − (P̂_w − 1/2)/β)² and (s_l − (P̂_l − 1/2)/β)² averaged, with η = 1/β
 * (src/pipeline/iterative.ts, src/backend/pair_terms.ts).
 */

import { parseFlags, runMain, UsageError } from "./_cli.ts";
import { LOSS_FLAGS } from "./_flags.ts";
import { mainRounds, roundsFlags } from "./_rounds.ts";

const flags = parseFlags(
  "sppo",
  "SPPO: rounds of sample -> win-rates -> cache the previous policy -> the SPPO squared loss.",
  {
    ...roundsFlags({
      rounds: {
        type: "number",
        default: 3,
        help: "rounds (each one's reference: the last policy)",
      },
    }),
    "loss-type": {
      ...LOSS_FLAGS["loss-type"],
      default: "sppo",
      help: "sppo (soft win-rates, the paper's); sppo_hard, or any other loss, on the same pairs",
    },
  },
);

await runMain(async () => {
  const rounds = Number(flags.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new UsageError(`--rounds: expected an integer >= 1, got ${flags.rounds}`);
  }
  await mainRounds("sppo", flags, { kind: "win-rate" }, rounds, "round");
});
