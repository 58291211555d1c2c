/**
 * `--shard`: a slice `i/n` given on the command line, or `auto`, which takes it from the
 * scheduler's environment: the index from `JOB_COMPLETION_INDEX` (a Kubernetes Indexed Job) or
 * `SHARD_INDEX` (other batch systems), the count from `SHARD_COUNT`.
 */

import { UsageError } from "./_cli.ts";

/** One slice of the examples: `index` of `count`, 0-based. */
export interface Shard {
  index: number;
  count: number;
}

const whole = (name: string, text: string | undefined): number | undefined => {
  if (text === undefined || text === "") return undefined;
  if (!/^\d+$/.test(text.trim())) {
    throw new UsageError(`--shard auto: ${name} must be a whole number, got "${text}"`);
  }
  return Number(text.trim());
};

/**
 * The shard of `--shard VALUE`; `env` reads the environment (Deno.env.get in the task).
 * @throws UsageError (exit 2) for a malformed value, or for `auto` with missing or inconsistent
 * variables.
 */
export function shardOf(value: string, env: (name: string) => string | undefined): Shard {
  if (value !== "auto") {
    const m = /^(\d+)\/(\d+)$/.exec(value);
    if (!m || Number(m[1]) >= Number(m[2])) {
      throw new UsageError(`--shard: expected i/n with 0 <= i < n, or auto, got "${value}"`);
    }
    return { index: Number(m[1]), count: Number(m[2]) };
  }
  const job = whole("JOB_COMPLETION_INDEX", env("JOB_COMPLETION_INDEX"));
  const plain = whole("SHARD_INDEX", env("SHARD_INDEX"));
  const count = whole("SHARD_COUNT", env("SHARD_COUNT"));
  if (job !== undefined && plain !== undefined && job !== plain) {
    throw new UsageError(
      `--shard auto: JOB_COMPLETION_INDEX=${job} and SHARD_INDEX=${plain} disagree; set one of them`,
    );
  }
  const index = job ?? plain;
  if (index === undefined) {
    throw new UsageError(
      "--shard auto: neither JOB_COMPLETION_INDEX (Kubernetes Indexed Job) nor SHARD_INDEX is set",
    );
  }
  if (count === undefined || count < 1) {
    throw new UsageError(
      "--shard auto: SHARD_COUNT is not set (set it to the number of shards, the Job's completions)",
    );
  }
  if (index >= count) {
    throw new UsageError(`--shard auto: index ${index} is not below SHARD_COUNT=${count}`);
  }
  return { index, count };
}
