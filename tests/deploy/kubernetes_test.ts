/**
 * deploy/kubernetes/: the Indexed Job's structure (kind, completionMode Indexed, SHARD_COUNT =
 * completions, `--shard auto`, one output per completion index, volumes), and its command lines
 * run here as N concurrent processes with the environment the Job gives each pod, then the merge
 * Job's command: the merged cache equals a single-process precompute byte for byte.
 */

import assert from "node:assert/strict";
import { parse } from "yaml";
import { CpuBackend } from "../../src/cpu/backend.ts";
import { runPrecompute } from "../../src/pipeline/precompute.ts";
import { makeTinyWorld, store } from "../pipeline/tiny_world.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const DEPLOY = `${ROOT}deploy/kubernetes`;

interface Container {
  command: string[];
  args: string[];
  env: Array<{ name: string; value: string }>;
  volumeMounts: Array<{ name: string; mountPath: string }>;
  workingDir: string;
}

// deno-lint-ignore no-explicit-any
async function manifest(name: string): Promise<any> {
  return parse(await Deno.readTextFile(`${DEPLOY}/${name}`));
}

function container(job: { spec: { template: { spec: { containers: Container[] } } } }) {
  const containers = job.spec.template.spec.containers;
  assert.equal(containers.length, 1);
  return containers[0];
}

/** Kubernetes' $(VAR) expansion of command and args from the container's environment. */
function expand(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name?: string) => {
    if (m === "$$") return "$";
    return name !== undefined && name in env ? env[name] : m;
  });
}

Deno.test("the precompute manifest is an Indexed Job whose env wires --shard auto", async () => {
  const job = await manifest("precompute-job.yaml");
  assert.equal(job.apiVersion, "batch/v1");
  assert.equal(job.kind, "Job");
  assert.equal(job.spec.completionMode, "Indexed");
  assert.ok(Number.isInteger(job.spec.completions) && job.spec.completions > 1);
  assert.equal(job.spec.template.spec.restartPolicy, "Never");
  const c = container(job);
  const env = Object.fromEntries(c.env.map((e) => [e.name, e.value]));
  assert.equal(Number(env.SHARD_COUNT), job.spec.completions, "SHARD_COUNT = completions");
  assert.deepEqual(c.command, ["deno", "task", "precompute"]);
  assert.ok(c.args.includes("--shard=auto"));
  const output = c.args.find((a) => a.startsWith("--output="))!;
  assert.match(output, /\$\(JOB_COMPLETION_INDEX\)/, "one output file per completion index");
  // Every path the command reads or writes lies on a mounted volume.
  const mounts = c.volumeMounts.map((m) => m.mountPath);
  for (const name of ["MODEL_DIR", "DATA_FILE", "CACHE_DIR"]) {
    assert.ok(mounts.some((m) => env[name].startsWith(m + "/")), `${name} on a volume`);
  }
  const volumes = job.spec.template.spec.volumes.map((v: { name: string }) => v.name);
  for (const m of c.volumeMounts) assert.ok(volumes.includes(m.name), `volume ${m.name}`);

  const merge = await manifest("merge-job.yaml");
  assert.equal(merge.kind, "Job");
  assert.equal(merge.spec.completions, 1);
  const m = container(merge);
  const mergeEnv = Object.fromEntries(m.env.map((e) => [e.name, e.value]));
  assert.equal(mergeEnv.CACHE_DIR, env.CACHE_DIR, "the merge reads where the shards are written");
  assert.match(m.args[0], /precompute --merge/);
  assert.match(m.args[0], /ref\.shard-\*\.bin/);
});

Deno.test("the Job's command lines as concurrent processes merge to the one-pass cache", async () => {
  await using w = await makeTinyWorld(14);
  const job = await manifest("precompute-job.yaml");
  const c = container(job);
  const count = job.spec.completions as number;
  const env: Record<string, string> = {
    ...Object.fromEntries(c.env.map((e) => [e.name, e.value])),
    MODEL_DIR: w.base,
    DATA_FILE: w.prefs,
    EVAL_DATA_FILE: w.prefsEval,
    CACHE_DIR: `${w.dir}/cache`,
  };
  await Deno.mkdir(env.CACHE_DIR);
  const deno = Deno.execPath();
  const run = async (command: string, args: string[], extra: Record<string, string>) => {
    const out = await new Deno.Command(command, {
      args,
      cwd: ROOT,
      env: { ...extra, PATH: `${deno.replace(/\/[^/]*$/, "")}:${Deno.env.get("PATH")}` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    return text;
  };
  const pods = Array.from({ length: count }, (_, i) => {
    const podEnv = { ...env, JOB_COMPLETION_INDEX: String(i) };
    const args = [...c.command.slice(1), ...c.args].map((a) => expand(a, podEnv));
    return run(deno, args, podEnv);
  });
  const logs = await Promise.all(pods);
  logs.forEach((log, i) => assert.match(log, new RegExp(`wrote .*ref\\.shard-${i}\\.bin`)));
  const merge = container(await manifest("merge-job.yaml"));
  const mergeArgs = [...merge.command.slice(1), ...merge.args].map((a) => expand(a, env));
  await run(merge.command[0], mergeArgs, { CACHE_DIR: env.CACHE_DIR });

  const flag = (name: string) =>
    expand(c.args.find((a) => a.startsWith(`--${name}=`))!.split("=")[1], env);
  const single = `${w.dir}/single.bin`;
  await runPrecompute(store, new CpuBackend("f32"), {
    model: flag("model"),
    data: { path: flag("data") },
    evalData: { path: flag("eval-data") },
    tokenOptions: {
      maxLength: Number(flag("max-length")),
      maxPromptLength: Number(flag("max-prompt-length")),
    },
    output: single,
  });
  assert.deepEqual(
    await store.readFile(`${env.CACHE_DIR}/ref.bin`),
    await store.readFile(single),
    "merged shards = one process, byte for byte",
  );
});
