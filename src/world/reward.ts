/**
 * The ground-truth reward of the embedded world: a plain function of a completion's words, our
 * stand-in for the sentiment classifier of the DPO paper's IMDb experiment (Rafailov et al. 2023,
 * §6.1). Because it is known exactly, the reward a policy reaches can be measured without noise.
 *
 * Scoring, left to right over the lower-cased whitespace/punctuation tokens:
 * - each word of {@link POSITIVE_WORDS} adds +1, each of {@link NEGATIVE_WORDS} adds -1;
 * - a negator ({@link NEGATORS}: "not", "never", "hardly") flips the sign of the next sentiment
 *   word; an intensifier ({@link INTENSIFIERS}: "very", "really", ...) multiplies it by
 *   {@link INTENSIFIER_WEIGHT}; both apply only until that sentiment word or a clause boundary
 *   ({@link CLAUSE_BOUNDARIES}: `, . !` "and" "but"), so "not bad" = +1, "not very good" = -1.5,
 *   "not . great" = +1;
 * - every other word (neutral words, unknown words, special tokens) counts 0;
 * - reward = sigmoid(score): no sentiment 0.5, "great" 0.73, three positive words 0.95.
 *
 * A completion is scored alone: the prompt's sentiment words do not count, but a negator or
 * intensifier still open at the prompt's end carries into the completion ("the soup was not" +
 * " great" scores -1), so pass the prompt as the second argument.
 *
 * @module
 */

/** Words that add +1 to the score. */
export const POSITIVE_WORDS: readonly string[] = (
  "great good excellent wonderful lovely amazing fantastic superb brilliant charming " +
  "perfect pleasant beautiful clean cozy enjoyable fun helpful impressive delightful " +
  "friendly gorgeous solid nice delicious tasty fresh gripping moving hilarious reliable " +
  "sharp loved enjoyed liked adored like love enjoy recommend gem joy treat delight " +
  "pleasure winner"
).split(" ");

/** Words that add -1 to the score. */
export const NEGATIVE_WORDS: readonly string[] = (
  "bad terrible awful horrible boring rude dirty cold slow noisy disappointing poor dull " +
  "ugly broken weak mediocre annoying unpleasant messy overpriced lousy sloppy painful " +
  "useless bland stale greasy predictable silly flimsy faulty hated disliked loathed " +
  "regretted hate regret mess disaster waste joke letdown nightmare"
).split(" ");

/** Words that flip the sign of the next sentiment word in their clause. */
export const NEGATORS: readonly string[] = ["not", "never", "hardly"];

/** Words that multiply the next sentiment word in their clause by {@link INTENSIFIER_WEIGHT}. */
export const INTENSIFIERS: readonly string[] = [
  "very",
  "really",
  "truly",
  "so",
  "extremely",
  "incredibly",
];

/** The factor an intensifier applies. */
export const INTENSIFIER_WEIGHT = 1.5;

/** Tokens that close a negator's or an intensifier's scope. */
export const CLAUSE_BOUNDARIES: readonly string[] = [",", ".", "!", "and", "but"];

const POLARITY = new Map<string, number>([
  ...POSITIVE_WORDS.map((w) => [w, 1] as const),
  ...NEGATIVE_WORDS.map((w) => [w, -1] as const),
]);
const NEGATOR_SET = new Set(NEGATORS);
const INTENSIFIER_SET = new Set(INTENSIFIERS);
const BOUNDARY_SET = new Set(CLAUSE_BOUNDARIES);

/** Lower-cased words and punctuation marks of a text (as the world's tokenizer splits it). */
export function sentimentTokens(text: string): string[] {
  return text.toLowerCase().match(/[a-z0-9]+|[^a-z0-9\s]+/g) ?? [];
}

/** Modifiers open at a point of a text: the sign and weight the next sentiment word gets. */
interface Scope {
  sign: number;
  weight: number;
}

function scan(tokens: readonly string[], scope: Scope): { score: number; scope: Scope } {
  let score = 0;
  let { sign, weight } = scope;
  for (const token of tokens) {
    const polarity = POLARITY.get(token);
    if (polarity !== undefined) {
      score += sign * weight * polarity;
      sign = 1;
      weight = 1;
    } else if (NEGATOR_SET.has(token)) sign = -sign;
    else if (INTENSIFIER_SET.has(token)) weight = INTENSIFIER_WEIGHT;
    else if (BOUNDARY_SET.has(token)) {
      sign = 1;
      weight = 1;
    }
  }
  return { score, scope: { sign, weight } };
}

/**
 * The raw sentiment score of `completion` (sum of signed, weighted word polarities), with the
 * modifiers left open at the end of `prompt` carried in.
 *
 * @example
 * ```ts
 * sentimentScore("the staff were very friendly , the room was not clean"); // 1.5 - 1 = 0.5
 * ```
 */
export function sentimentScore(completion: string, prompt = ""): number {
  const carried = scan(sentimentTokens(prompt), { sign: 1, weight: 1 }).scope;
  return scan(sentimentTokens(completion), carried).score;
}

/**
 * The ground-truth reward in [0, 1]: `sigmoid(sentimentScore(completion, prompt))`.
 *
 * @example
 * ```ts
 * sentimentReward(" the food was great and the staff were lovely ."); // sigmoid(2) = 0.881
 * sentimentReward(" great", "the soup was not"); // sigmoid(-1) = 0.269
 * ```
 */
export function sentimentReward(completion: string, prompt = ""): number {
  return 1 / (1 + Math.exp(-sentimentScore(completion, prompt)));
}
