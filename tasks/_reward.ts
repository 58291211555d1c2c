/**
 * `--reward`: a user's reward module, loaded by dynamic import of its path (here, in tasks/, so
 * src/ stays browser-safe), or the embedded world's reward. The module's default export is the
 * reward `(prompt, completion) => number | Promise<number>`; an optional named export
 * `prefer(prompt, a, b)` is its own pairwise judge (else Bradley-Terry of the two rewards).
 */

import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { UsageError } from "./_cli.ts";
import { type RewardModule, WORLD_REWARD } from "../src/eval/reward_fn.ts";

/** The flag of the reward. */
export const REWARD_FLAG = {
  reward: {
    type: "string",
    default: "world",
    help: "reward module (its default export: (prompt, completion) => number; optional export " +
      "prefer(prompt, a, b)), or world: the embedded world's ground-truth reward",
  },
} as const;

/**
 * The reward module of `--reward`.
 * @throws UsageError (exit 2) when the module cannot be loaded or has no default export function.
 */
export async function loadReward(path: string | undefined): Promise<RewardModule> {
  if (!path || path === "world") return WORLD_REWARD;
  let mod: Record<string, unknown>;
  try {
    mod = await import(pathToFileURL(resolve(path)).href);
  } catch (error) {
    throw new UsageError(
      `--reward ${path}: cannot load the module (${(error as Error).message.split("\n")[0]}); ` +
        "give the path of a TypeScript or JavaScript module",
    );
  }
  if (typeof mod.default !== "function") {
    throw new UsageError(
      `--reward ${path}: the module has no default export function; export ` +
        "`default function reward(prompt: string, completion: string): number`",
    );
  }
  if (mod.prefer !== undefined && typeof mod.prefer !== "function") {
    throw new UsageError(`--reward ${path}: its export prefer is not a function`);
  }
  return {
    source: path,
    reward: mod.default as RewardModule["reward"],
    prefer: mod.prefer as RewardModule["prefer"],
  };
}
