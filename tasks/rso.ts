/**
 * `deno task rso --model SFT --prompts FILE --output-dir DIR`: statistical rejection sampling
 * optimisation (Liu et al., ICLR 2024). The SFT policy samples K candidates per prompt; Algorithm 1
 * accepts them with probability exp((r - r_max) / β) towards the optimal policy of the reward at
 * β (--rso-beta, default --beta); consecutive accepted samples are paired by reward and trained
 * with DPO (--loss-type sigmoid) or the paper's hinge loss (--loss-type hinge, β the inverse
 * margin), against the SFT model's cached log-probs.
 */

import { parseFlags, runMain, UsageError } from "./_cli.ts";
import { mainRounds, roundsFlags } from "./_rounds.ts";

const flags = parseFlags(
  "rso",
  "RSO: rejection-sample the SFT policy towards the reward's optimal policy, then DPO or hinge.",
  roundsFlags({
    "rso-beta": {
      type: "number",
      help: "β of the rejection sampler's target exp(r/β) (default: --beta)",
    },
    "accepted-per-prompt": {
      type: "number",
      default: 2,
      help: "samples accepted per prompt (paired consecutively: 2 = one pair)",
    },
  }),
);

await runMain(async () => {
  const beta = flags.rsoBeta === undefined ? Number(flags.beta) : Number(flags.rsoBeta);
  if (!(beta > 0)) throw new UsageError(`--rso-beta: must be > 0, got ${flags.rsoBeta}`);
  const accepted = Number(flags.acceptedPerPrompt);
  if (!Number.isInteger(accepted) || accepted < 2) {
    throw new UsageError(`--accepted-per-prompt: expected an integer >= 2`);
  }
  await mainRounds("rso", flags, { kind: "rso", beta, accepted }, 1, "none");
});
