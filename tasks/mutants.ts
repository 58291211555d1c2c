/**
 * `deno task mutants`: applies each deliberate mutation of tasks/mutants_list.ts to a temporary
 * copy of the repository, runs the test files that should catch it, and reports which test
 * killed it or that it SURVIVED (exit 1 if any did). Before the first mutant the same test files
 * run on the unmutated copy: a mutant only counts as killed by tests that pass without it.
 *
 *   deno task mutants                      every mutation, a table on stderr
 *   deno task mutants --seed 3 --count 2   a seeded subset (what CI runs)
 *   deno task mutants --json               one array of {"name","file","killed","by"} on stdout
 *
 * @module
 */

import { Progress, runMain, UsageError } from "./_cli.ts";
import { parseFlags } from "./_cli.ts";
import { type Mutation, MUTATIONS } from "./mutants_list.ts";
import { seededPermutation } from "../src/data/sampler.ts";

/** What a mutant run found. */
export interface MutantResult {
  name: string;
  file: string;
  killed: boolean;
  /** The first failing test (`file: name`), "timeout", or why it survived. */
  by: string;
}

/** The paths a mutant's copy holds (the rest of the repository is not needed by the tests). */
export const COPIED = ["src", "tests", "tasks", "mod.ts", "deno.json", "deno.lock", "data"];

/** A mutation whose snippet does not occur as often as it says: the list is stale. */
export class StaleMutationError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "StaleMutationError";
  }
}

/** Occurrences of `find` in `text`. */
function occurrences(text: string, find: string): number {
  if (find === "") return 0;
  return text.split(find).length - 1;
}

/** Applies a mutation to a file's text, or throws naming the mutation when the snippet is off. */
export function applyMutation(text: string, m: Mutation): string {
  const expected = m.count ?? 1;
  const found = occurrences(text, m.find);
  if (found !== expected) {
    throw new StaleMutationError(
      `mutation "${m.name}": ${m.file} holds its snippet ${found} time(s), the list says ` +
        `${expected}; update tasks/mutants_list.ts to the code:\n  ${JSON.stringify(m.find)}`,
    );
  }
  const mutated = text.split(m.find).join(m.replace);
  if (mutated === text) throw new StaleMutationError(`mutation "${m.name}" changes nothing`);
  return mutated;
}

/** Checks every mutation against the sources under `root` (so a stale entry fails at once). */
export async function checkMutations(root: string, mutations: readonly Mutation[]): Promise<void> {
  for (const m of mutations) {
    if (m.tests.length === 0) throw new StaleMutationError(`mutation "${m.name}" lists no tests`);
    applyMutation(await Deno.readTextFile(`${root}/${m.file}`), m);
    for (const t of m.tests) {
      if (!(await exists(`${root}/${t}`))) {
        throw new StaleMutationError(`mutation "${m.name}": no test file ${t}`);
      }
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Copies a file or folder tree. */
async function copyTree(from: string, to: string): Promise<void> {
  const info = await Deno.stat(from);
  if (info.isFile) return await Deno.copyFile(from, to);
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    await copyTree(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

/** The mutations `--seed N --count K` picks: a seeded permutation's first K, in list order. */
export function selectMutations(
  mutations: readonly Mutation[],
  { seed, count }: { seed?: number; count?: number } = {},
): Mutation[] {
  if (count === undefined) return [...mutations];
  const order = seed === undefined
    ? mutations.map((_, i) => i)
    : seededPermutation(mutations.length, seed);
  return order.slice(0, count).sort((a, b) => a - b).map((i) => mutations[i]);
}

/**
 * The first failing test in Deno's report, as `file: name`. The name comes from the FAILURES
 * section (`name => ./where:line:col`, where is the registering call, a helper for gpuTest); the
 * file from the last `running N tests from FILE` header before the test's own line.
 */
export function firstFailure(output: string): string | undefined {
  // deno-lint-ignore no-control-regex
  const plain = output.replace(/\x1b\[[0-9;]*m/g, "");
  const section = plain.split(/\n FAILURES \n/)[1] ?? plain.split(/\n ERRORS \n/)[1];
  const line = section?.split("\n").find((l) => / => \.\/.+:\d+:\d+$/.test(l));
  if (!line) return undefined;
  const name = line.slice(0, line.lastIndexOf(" => ")).trim();
  const where = line.slice(line.lastIndexOf(" => ") + 4).replace(/^\.\//, "").replace(
    /:\d+:\d+$/,
    "",
  );
  const at = plain.indexOf(`\n${name} ...`);
  const headers = [
    ...plain.slice(0, at < 0 ? 0 : at).matchAll(/^running \d+ tests? from \.\/(\S+)$/gm),
  ];
  return `${headers.at(-1)?.[1] ?? where}: ${name}`;
}

/** Runs test files in `dir` (no type check: the mutant, not its types, is under test). */
async function runTests(dir: string, files: string[], timeoutMs: number) {
  const env = Deno.env.toObject();
  // Without CI a test that cannot run here is ignored, so it cannot kill a mutant by failing.
  delete env.CI;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "--unstable-webgpu", "-A", "--no-check", ...files],
    cwd: dir,
    env: { ...env, NO_COLOR: "1" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  const { code, stdout, stderr } = await child.output();
  clearTimeout(timer);
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code, timedOut, output: decode(stdout) + decode(stderr) };
}

/** Options of {@link runMutants}. */
export interface RunOptions {
  /** The repository to copy. @default the folder above tasks/ */
  root?: string;
  /** Per test run. @default 600000 */
  timeoutMs?: number;
  /** Called after each mutant. */
  onResult?: (r: MutantResult, done: number) => void;
}

/**
 * Runs each mutation on one temporary copy of the repository (restored after each), after
 * checking that the listed tests pass on the copy unmutated; the copy is removed at the end.
 */
export async function runMutants(
  mutations: readonly Mutation[],
  { root = new URL("..", import.meta.url).pathname, timeoutMs = 600_000, onResult }: RunOptions =
    {},
): Promise<MutantResult[]> {
  await checkMutations(root, mutations);
  const dir = await Deno.makeTempDir({ prefix: "dpo-mutants-" });
  try {
    for (const path of COPIED) {
      if (await exists(`${root}/${path}`)) await copyTree(`${root}/${path}`, `${dir}/${path}`);
    }
    const files = [...new Set(mutations.flatMap((m) => m.tests))].sort();
    const baseline = await runTests(dir, files, timeoutMs);
    if (baseline.code !== 0) {
      throw new Error(
        `the tests fail without any mutation (${firstFailure(baseline.output) ?? "see below"}): ` +
          `fix them first\n${baseline.output.slice(-3000)}`,
      );
    }
    const results: MutantResult[] = [];
    for (const m of mutations) {
      const path = `${dir}/${m.file}`;
      const original = await Deno.readTextFile(path);
      await Deno.writeTextFile(path, applyMutation(original, m));
      try {
        const run = await runTests(dir, m.tests, timeoutMs);
        const by = run.timedOut
          ? "timeout"
          : run.code === 0
          ? "SURVIVED"
          : firstFailure(run.output) ?? `exit ${run.code}: ${run.output.trim().split("\n").at(-1)}`;
        results.push({ name: m.name, file: m.file, killed: run.timedOut || run.code !== 0, by });
      } finally {
        await Deno.writeTextFile(path, original);
      }
      onResult?.(results.at(-1)!, results.length);
    }
    return results;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The results as a Markdown table, with the count killed. */
export function formatTable(results: readonly MutantResult[]): string {
  const cell = (s: string) => s.replaceAll("|", "\\|");
  const lines = [
    "| mutation | file | killed by |",
    "| --- | --- | --- |",
    ...results.map((r) =>
      `| ${cell(r.name)} | ${r.file} | ${r.killed ? cell(r.by) : "**SURVIVED**"} |`
    ),
  ];
  const killed = results.filter((r) => r.killed).length;
  return `${lines.join("\n")}\n\n${killed}/${results.length} mutants killed`;
}

if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags("mutants", "Runs the deliberate mutations of tasks/mutants_list.ts.", {
      seed: { type: "number", help: "pick the subset by this seed (with --count)" },
      count: { type: "number", help: "run only this many mutations (default: all)" },
      json: { type: "boolean", default: false, help: "print the results as JSON on stdout" },
    });
    const count = flags.count as number | undefined;
    if (count !== undefined && !(Number.isInteger(count) && count > 0)) {
      throw new UsageError(`--count: expected a positive integer, got ${count}`);
    }
    if (flags.seed !== undefined && count === undefined) {
      throw new UsageError("--seed picks a subset: give --count too");
    }
    const selected = selectMutations(MUTATIONS, { seed: flags.seed as number | undefined, count });
    const progress = new Progress("mutants", selected.length);
    const results = await runMutants(selected, {
      onResult: (r, done) => {
        if (done < selected.length) {
          progress.update(done, `${r.killed ? "killed" : "SURVIVED"}: ${r.name}`);
        }
      },
    });
    progress.done();
    if (flags.json) console.log(JSON.stringify(results));
    else console.error(formatTable(results));
    if (results.some((r) => !r.killed)) Deno.exit(1);
  });
}
