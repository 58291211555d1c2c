/**
 * `deno task frontier`: the DPO paper's reward-KL frontier in miniature on the embedded world:
 * DPO at β ∈ {0.05, 0.1, 0.5, 1, 5} and Preferred-FT from the same SFT model, each evaluated
 * every k steps; one chart of reward against KL (runs/<name>/frontier/report.html).
 * `--quick` runs β ∈ {0.1, 1} and Preferred-FT for 50 steps each with fewer prompts, in a few
 * minutes.
 */

import { parseFlags, Progress, runMain, UsageError } from "./_cli.ts";
import { COMMON_FLAGS, deviceOf } from "./_flags.ts";
import { openBackend, stageHooks, store, timed } from "./_stage.ts";
import { defaultPipelineSpec } from "../src/pipeline/defaults.ts";
import { runPaths } from "../src/pipeline/pipeline.ts";
import { runSft } from "../src/pipeline/sft.ts";
import { runPrecompute } from "../src/pipeline/precompute.ts";
import { type FrontierMethod, runFrontier } from "../src/pipeline/frontier.ts";
import { joinPath } from "../src/io/fs.ts";

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
  const backend = await openBackend(deviceOf(flags));
  const paths = runPaths(spec.runDir);
  await timed("sft", () =>
    runSft(store, backend, {
      model: spec.baseModel,
      data: { path: spec.sftData },
      evalData: spec.sftEvalData,
      outputDir: paths.sft,
      tokenOptions: spec.tokenOptions,
      optimizer: spec.sft.optimizer,
      loop: spec.sft.loop,
    }, stageHooks("sft", ["loss"])));
  await timed("precompute", () =>
    runPrecompute(store, backend, {
      model: paths.sft,
      data: { path: spec.preferenceData },
      evalData: spec.preferenceEvalData ? { path: spec.preferenceEvalData } : undefined,
      tokenOptions: spec.tokenOptions,
      output: paths.refCache,
    }));
  const methods: FrontierMethod[] = [
    ...betas.map((beta) => ({ method: "dpo" as const, beta })),
    { method: "preferred-ft" },
  ];
  const bars = new Map<string, Progress>();
  const outputDir = joinPath(spec.runDir, flags.quick ? "frontier-quick" : "frontier");
  const points = await timed("frontier", () =>
    runFrontier(store, backend, {
      sftModel: paths.sft,
      preferenceData: spec.preferenceData,
      refCache: paths.refCache,
      prompts: spec.evalPrompts!,
      outputDir,
      methods,
      tokenOptions: spec.tokenOptions,
      optimizer: spec.dpo.optimizer,
      preferredFtOptimizer: spec.sft.optimizer,
      loop: {
        ...spec.dpo.loop,
        numTrainEpochs: flags.quick ? 1 : flags.numTrainEpochs as number,
        maxSteps: flags.quick ? 50 : -1,
        evalSteps: flags.quick ? 10 : flags.evalSteps as number,
      },
      evalSeeds: [0],
      maxNewTokens: 16,
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
        `reward ${p.reward.toFixed(3)}, KL ${p.kl.toFixed(2)}`,
    );
  }
  console.error(`chart: ${outputDir}/report.html`);
  if (flags.json) console.log(JSON.stringify({ points }));
});
