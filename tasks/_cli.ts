/**
 * Command-line plumbing shared by the tasks: flag specs with defaults and help text, parsing with
 * `node:util`'s parseArgs, usage errors that name the flag and exit with code 2, and progress
 * on stderr.
 */

import { parseArgs } from "node:util";
import { defaultRuntimeDir } from "./_driver_env.ts";
import { killPointHandler, setKillPointHandler } from "../src/io/kill_point.ts";

// The fault tests' kill points (src/io/kill_point.ts): read only when a test sets the variable.
const killAt = Deno.env.get("DPO_TEST_KILL_AT");
if (killAt) {
  setKillPointHandler(killPointHandler(killAt, () => Deno.kill(Deno.pid, "SIGKILL")));
}

/** One flag: its type, default, help line and aliases (kebab-case, without dashes). */
export interface FlagSpec {
  type: "string" | "number" | "boolean";
  default?: string | number | boolean;
  help: string;
  aliases?: string[];
  /** Allowed values of a string flag. */
  choices?: readonly string[];
}

/** A usage or input error: printed without a stack trace, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parsed flag values, keyed by camelCase name; positional arguments under `_`. */
export interface Flags {
  _: string[];
  [key: string]: string | number | boolean | undefined | string[];
}

/** The flags each {@link parseFlags} result was given on the command line (canonical names). */
const GIVEN = new WeakMap<Flags, ReadonlySet<string>>();

/** The flags that were given explicitly (not defaulted), by canonical name (e.g. "max-steps"). */
export function givenFlags(flags: Flags): ReadonlySet<string> {
  return GIVEN.get(flags) ?? new Set();
}

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Formats the help text of a task. */
export function helpText(name: string, summary: string, specs: Record<string, FlagSpec>): string {
  const lines = [`deno task ${name} [flags]`, "", summary, "", "Flags:"];
  for (const [flag, spec] of Object.entries(specs)) {
    const names = [flag, ...(spec.aliases ?? [])].map((f) => `--${f}`).join(", ");
    const arg = spec.type === "boolean" ? "" : spec.choices ? ` ${spec.choices.join("|")}` : " X";
    const def =
      spec.default === undefined || spec.default === "" || /\(default\b/.test(spec.help ?? "")
        ? ""
        : ` (default: ${spec.default})`;
    lines.push(`  ${(names + arg).padEnd(40)} ${spec.help}${def}`);
  }
  lines.push(`  ${"--help".padEnd(40)} show this help`);
  return lines.join("\n");
}

/**
 * Parses `args` against `specs`. Prints help and exits 0 on --help; on an unknown flag or a bad
 * value prints what is wrong, naming the flag, and exits 2.
 */
export function parseFlags(
  name: string,
  summary: string,
  specs: Record<string, FlagSpec>,
  args: string[] = Deno.args,
  options: { positionals?: boolean } = {},
): Flags {
  try {
    return parseFlagsOrThrow(name, summary, specs, args, options);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`error: ${error.message}`);
    Deno.exit(2);
  }
}

/** {@link parseFlags}, throwing {@link UsageError} instead of exiting. */
export function parseFlagsOrThrow(
  name: string,
  summary: string,
  specs: Record<string, FlagSpec>,
  args: string[] = Deno.args,
  { positionals = false }: { positionals?: boolean } = {},
): Flags {
  const options: Record<string, { type: "string" | "boolean" }> = { help: { type: "boolean" } };
  for (const [flag, spec] of Object.entries(specs)) {
    const type = spec.type === "boolean" ? "boolean" : "string";
    for (const n of [flag, ...(spec.aliases ?? [])]) options[n] = { type };
  }
  let parsed;
  try {
    args = joinNegativeValues(args, options);
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}. Run \`deno task ${name} --help\`.`);
  }
  if (parsed.values.help) {
    console.log(helpText(name, summary, specs));
    Deno.exit(0);
  }
  if (!positionals && parsed.positionals.length > 0) {
    throw new UsageError(
      `unexpected argument "${parsed.positionals[0]}". Run \`deno task ${name} --help\`.`,
    );
  }
  const out: Flags = { _: parsed.positionals };
  const given = new Set<string>();
  GIVEN.set(out, given);
  for (const [flag, spec] of Object.entries(specs)) {
    const raw = [flag, ...(spec.aliases ?? [])].map((n) => parsed.values[n]).find((v) =>
      v !== undefined
    );
    const key = camel(flag);
    if (raw === undefined) {
      out[key] = spec.default;
      continue;
    }
    given.add(flag);
    if (spec.type === "number") {
      const value = Number(raw);
      if (raw === "" || !Number.isFinite(value)) {
        throw new UsageError(`--${flag}: expected a number, got "${raw}"`);
      }
      out[key] = value;
    } else if (spec.type === "string" && spec.choices && !spec.choices.includes(String(raw))) {
      throw new UsageError(`--${flag}: expected one of ${spec.choices.join(", ")}, got "${raw}"`);
    } else {
      out[key] = raw as string | boolean;
    }
  }
  return out;
}

/**
 * `--max-steps -1`: parseArgs takes "-1" for an option of its own; a negative number after a flag
 * that takes a value is that flag's value, as in argparse.
 */
function joinNegativeValues(
  args: string[],
  options: Record<string, { type: "string" | "boolean" }>,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const flag = /^--([^=]+)$/.exec(args[i])?.[1];
    const next = args[i + 1];
    if (flag && options[flag]?.type === "string" && next !== undefined && /^-\.?\d/.test(next)) {
      out.push(`${args[i]}=${next}`);
      i++;
    } else out.push(args[i]);
  }
  return out;
}

/** Errors that mean bad usage or bad input (exit code 2), by class name. */
export const INPUT_ERRORS: ReadonlySet<string> = new Set([
  "UsageError",
  "ValidationError",
  "NonFiniteInputError",
  "LockError",
  "OutputDirError",
  "PromptsError",
  "CacheError",
  "ConfigError",
  "CheckpointError",
  "SafetensorsError",
  "FileNotFoundError",
  "NoAdapterError",
  "PeftAdapterError",
  "RangeError",
]);

/**
 * Runs a task's main: a usage or input error ({@link INPUT_ERRORS}, or any error marked
 * `exitCode: 2`) prints its message and exits 2; any other error prints and exits 1. Before it,
 * the driver's environment gets its defaults (`XDG_RUNTIME_DIR`, see {@link defaultRuntimeDir}),
 * since every GPU adapter is requested inside a task's main.
 */
export async function runMain(main: () => Promise<void>): Promise<void> {
  defaultRuntimeDir();
  try {
    await main();
  } catch (error) {
    const code = (error as { exitCode?: number }).exitCode === 2 ||
        (error instanceof Error && INPUT_ERRORS.has(error.name))
      ? 2
      : 1;
    const message = error instanceof Error ? error.message : String(error);
    console.error(`error: ${message}`);
    if (code === 1 && Deno.env.get("DPO_DEBUG")) console.error(error);
    Deno.exit(code);
  }
}

const encoder = new TextEncoder();

/**
 * A one-line progress bar on stderr, redrawn in place when stderr is a terminal. Otherwise it
 * writes a line every tenth of the way (with the freshest status of that step, so it is written
 * when the bar moves on) and one at the end.
 */
export class Progress {
  #start = performance.now();
  #tty = Deno.stderr.isTerminal();
  #last = 0;
  #done = 0;
  #status = "";
  #seconds = 0;
  /** Not a terminal: a tenth-of-the-way line waiting for its step's last status. */
  #pending = false;
  /** The bar's line was ended by {@link interrupt} and shows its latest state. */
  #interrupted = false;

  constructor(readonly label: string, readonly total: number) {}

  /** Redraws with `done` of `total` and a status text; throttled to 10 per second unless `force`. */
  update(done: number, status = "", force = false): void {
    const now = performance.now();
    if (!force && done < this.total && now - this.#last < 100) return;
    this.#last = now;
    if (!this.#tty && this.#pending && done !== this.#done) this.#flush();
    if (done !== this.#done || this.#tty) this.#seconds = (now - this.#start) / 1000;
    this.#done = done;
    this.#status = status;
    this.#interrupted = false;
    if (this.#tty) Deno.stderr.writeSync(encoder.encode(`\r\x1b[2K${this.#line()}`));
    else if (done < this.total && done % Math.max(1, Math.floor(this.total / 10)) === 0) {
      this.#pending = true;
    }
  }

  /** Ends the bar's line so that another line can be printed under it; the next update goes on. */
  interrupt(): void {
    if (!this.#tty) {
      if (this.#pending) this.#flush();
      else if (this.#done === this.total && !this.#interrupted) {
        // The end reached: its line comes before what is printed under it, and only once.
        Deno.stderr.writeSync(encoder.encode(this.#line() + "\n"));
        this.#interrupted = true;
      }
    } else if (!this.#interrupted && this.#last > 0) {
      Deno.stderr.writeSync(encoder.encode("\n"));
      this.#interrupted = true;
    }
  }

  /** Ends the bar with a final line (none again when an interrupted line already shows it). */
  done(status = ""): void {
    if (this.#interrupted && this.#done === this.total && this.#status === status) return;
    if (this.#tty) {
      this.update(this.total, status, true);
      Deno.stderr.writeSync(encoder.encode("\n"));
      return;
    }
    if (this.#pending && this.#done !== this.total) this.#flush();
    this.#pending = false;
    this.#done = this.total;
    this.#status = status;
    this.#seconds = (performance.now() - this.#start) / 1000;
    Deno.stderr.writeSync(encoder.encode(this.#line() + "\n"));
  }

  #flush(): void {
    Deno.stderr.writeSync(encoder.encode(this.#line() + "\n"));
    this.#pending = false;
  }

  #line(): string {
    const width = 24;
    const share = this.#done / Math.max(1, this.total);
    const filled = Math.max(0, Math.min(width, Math.round(width * share)));
    const bar = "█".repeat(filled) + "░".repeat(width - filled);
    const seconds = this.#seconds.toFixed(1);
    return `${this.label} ${bar} ${this.#done}/${this.total} ${seconds}s ${this.#status}`;
  }
}
