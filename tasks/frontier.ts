/**
 * `deno task frontier`: the DPO paper's reward-KL frontier in miniature on the embedded world:
 * DPO at β ∈ {0.05, 0.1, 0.5, 1, 5} and Preferred-FT from the same SFT model, each evaluated
 * every k steps; one chart of reward against KL (runs/<name>/frontier/report.html).
 * `--quick` runs β ∈ {0.1, 1} and Preferred-FT for 50 steps each with fewer prompts, in a few
 * minutes.
 *
 * `--experiment length` is the length-exploitation experiment instead: the training pairs are
 * relabelled by a judge that adds a small bonus per token to the true score
 * (src/world/length_judge.ts), and DPO, R-DPO and SimPO train on the judged pairs (DPO on the true
 * labels beside them), with completion length and true reward charted against steps
 * (runs/<name>/length-experiment/report.html).
 */

import { sentimentReward } from "../src/world/reward.ts";
import { parseFlags, Progress, runMain, UsageError } from "./_cli.ts";
import { COMMON_FLAGS, deviceOf } from "./_flags.ts";
import { openBackend, stageHooks, store, timed } from "./_stage.ts";
import { defaultPipelineSpec } from "../src/pipeline/defaults.ts";
import { runPaths, runSftAndReference } from "../src/pipeline/pipeline.ts";
import { lengthExperimentMethods } from "../src/pipeline/length_experiment.ts";
import { type FrontierMethod, runFrontier } from "../src/pipeline/frontier.ts";
import { joinPath } from "../src/io/fs.ts";
import { DEFAULT_LENGTH_BONUS } from "../src/world/length_judge.ts";

/** DPO's peak learning rate in the frontier: small enough that the curves start near KL 0. */
const FRONTIER_LR = 5e-4;

const flags = parseFlags("frontier", "Reward-KL frontier of DPO (several β) and Preferred-FT.", {
  "run-name": { type: "string", default: "default", help: "run folder runs/<name> (SFT reused)" },
  quick: {
    type: "boolean",
    default: false,
    help: "β 0.1 and 1 plus Preferred-FT, 50 steps each, every 10 steps, 32 prompts",
  },
  betas: { type: "string", default: "0.05,0.1,0.5,1,5", help: "DPO β values" },
  "eval-steps": { type: "number", default: 20, help: "evaluate every k steps" },
  "num-train-epochs": { type: "number", default: 1, help: "epochs per method" },
  "learning-rate": {
    type: "number",
    help: "DPO's peak learning rate (default 5e-4; the length experiment: the default run's); " +
      "Preferred-FT uses the SFT stage's",
  },
  experiment: {
    type: "string",
    default: "frontier",
    choices: ["frontier", "length"],
    help: "frontier, or length: DPO, R-DPO and SimPO on pairs judged with a length bonus",
  },
  "length-bonus": {
    type: "number",
    default: DEFAULT_LENGTH_BONUS,
    help: "length experiment: the judge's bonus per token (sentiment-score units)",
  },
  ...COMMON_FLAGS,
});

await runMain(async () => {
  const root = new URL("../", import.meta.url).pathname;
  const spec = defaultPipelineSpec(root, String(flags.runName), false);
  if (!await store.exists(joinPath(spec.baseModel, "model.safetensors"))) {
    throw new UsageError(`${spec.baseModel} has no model: run \`deno task pretrain\` first`);
  }
  const betas = flags.quick ? [0.1, 1] : String(flags.betas).split(",").map(Number);
  if (betas.some((b) => !(b > 0))) throw new UsageError(`--betas: bad list "${flags.betas}"`);
  if (flags.learningRate !== undefined && !((flags.learningRate as number) > 0)) {
    throw new UsageError(`--learning-rate: expected a number > 0, got ${flags.learningRate}`);
  }
  const backend = await openBackend(deviceOf(flags), flags);
  const paths = runPaths(spec.runDir);
  await runSftAndReference(store, backend, spec, {
    stage: (name) => stageHooks(name, ["loss"]),
    onStage: (name, event, seconds) => {
      if (event === "skipped") console.error(`${name}: up to date: skipped`);
      if (event === "done") console.error(`${name} took ${seconds!.toFixed(1)} s`);
    },
  });
  const length = flags.experiment === "length";
  const methods: FrontierMethod[] = length
    ? await timed(
      "precompute (judged pairs)",
      () =>
        lengthExperimentMethods(store, backend, spec, paths.sft, flags.lengthBonus as number, {
          log: (m) => console.error(m),
        }),
    )
    : [
      ...betas.map((beta) => ({ method: "dpo" as const, beta })),
      { method: "preferred-ft" },
    ];
  const bars = new Map<string, Progress>();
  const outputDir = joinPath(
    spec.runDir,
    (length ? "length-experiment" : "frontier") + (flags.quick ? "-quick" : ""),
  );
  const points = await timed("frontier", () =>
    runFrontier(store, backend, {
      sftModel: paths.sft,
      preferenceData: spec.preferenceData,
      refCache: paths.refCache,
      prompts: spec.evalPrompts!,
      reward: sentimentReward,
      outputDir,
      methods,
      tokenOptions: spec.tokenOptions,
      // The frontier traces each run from KL 0, so its DPO steps are smaller than the default
      // run's; the length experiment trains as the default run does.
      optimizer: {
        ...spec.dpo.optimizer,
        lr: (flags.learningRate as number | undefined) ??
          (length ? spec.dpo.optimizer.lr : FRONTIER_LR),
      },
      preferredFtOptimizer: spec.sft.optimizer,
      loop: {
        ...spec.dpo.loop,
        numTrainEpochs: flags.quick ? 1 : flags.numTrainEpochs as number,
        maxSteps: flags.quick ? 50 : -1,
        evalSteps: flags.quick ? 10 : flags.evalSteps as number,
      },
      evalSeeds: [0],
      // Room to grow: the default run's samples average 10–13 tokens.
      maxNewTokens: length ? 24 : 16,
      promptLimit: flags.quick ? 32 : undefined,
    }, {
      log: (m) => console.error(`frontier: ${m}`),
      onStep: (label, step, total) => {
        if (!bars.has(label)) bars.set(label, new Progress(label, total));
        bars.get(label)!.update(step);
        if (step === total) bars.get(label)!.done();
      },
    }));
  for (const p of points) {
    console.error(
      `${p.method}${p.beta !== undefined ? ` β=${p.beta}` : ""} step ${p.step}: ` +
        `reward ${p.reward.toFixed(3)}, KL ${p.kl.toFixed(2)}` +
        (p.length !== undefined ? `, length ${p.length.toFixed(1)}` : ""),
    );
  }
  console.error(`chart: ${outputDir}/report.html`);
  if (flags.json) console.log(JSON.stringify({ points }));
});
