/**
 * The embedded world: short English-like reviews of restaurants, hotels, films, books and gadgets
 * from a small seeded grammar whose words carry the sentiment that {@link sentimentReward} scores.
 * Each review is 8-20 tokens (words and punctuation, written space-separated), has 1-3 clauses,
 * and often switches sentiment midway ("the soup was delicious , but the waiter was rude ."), so
 * that the continuation of a prefix is not decided by the prefix: a base model trained on it can
 * write either sentiment, and DPO has something to choose.
 *
 * Everything is a pure function of a seed (mulberry32 streams), so {@link generateWorld} gives
 * the same bytes on every machine.
 *
 * @module
 */

import { seededRandom } from "../data/sampler.ts";
import { mixSeed } from "../data/sampler.ts";
import { INTENSIFIERS, NEGATIVE_WORDS, NEGATORS, POSITIVE_WORDS } from "./reward.ts";
import type { FileStore } from "../io/fs.ts";
import { joinPath } from "../io/fs.ts";
import { SPECIAL_TOKENS, worldTokenizerConfig, worldTokenizerJson } from "./tokenizer.ts";

/** A review's sentiment direction: +1 positive, -1 negative, 0 neutral. */
type Polarity = 1 | -1 | 0;

type Random = () => number;

interface Domain {
  nouns: readonly string[];
  positive: readonly string[];
  negative: readonly string[];
  /** Neutral clauses, as token lists; `{day}`, `{n}` and `{count}` are filled in. */
  neutral: readonly string[];
}

const w = (s: string) => s.split(" ");

const GENERAL_POSITIVE = w(
  "great good excellent wonderful lovely amazing fantastic superb brilliant charming perfect " +
    "pleasant beautiful enjoyable fun impressive delightful gorgeous solid nice",
);
const GENERAL_NEGATIVE = w(
  "bad terrible awful horrible disappointing poor mediocre annoying unpleasant lousy sloppy " +
    "painful useless weak dull ugly messy",
);
const NEUTRAL_ADJECTIVES = w("big small long short new old modern simple local busy");

const DOMAINS: Record<string, Domain> = {
  restaurant: {
    nouns: w("food soup pasta pizza coffee dessert bread salad steak waiter staff service menu"),
    positive: w("delicious tasty fresh friendly cozy clean helpful"),
    negative: w("bland stale greasy cold slow rude overpriced dirty noisy"),
    neutral: [
      "we went there for dinner on {day}",
      "we went there for lunch on {day}",
      "i ordered the {n}",
      "we sat near the window",
    ],
  },
  hotel: {
    nouns: w("hotel room bed pool breakfast view lobby shower staff location"),
    positive: w("clean cozy friendly helpful fresh"),
    negative: w("dirty noisy cold rude overpriced slow"),
    neutral: ["we stayed there for {count} nights", "we checked in on {day}", "i booked the {n}"],
  },
  movie: {
    nouns: w("movie film plot acting ending music cast script story scene"),
    positive: w("gripping moving hilarious"),
    negative: w("boring predictable silly slow"),
    neutral: ["i watched it with my {who}", "i saw it on {day}", "we saw the {n} on {day}"],
  },
  book: {
    nouns: w("book story ending author writing hero chapter plot"),
    positive: w("gripping moving hilarious"),
    negative: w("boring predictable silly"),
    neutral: ["i read it on the train", "i read it in {count} days", "my {who} gave me the {n}"],
  },
  gadget: {
    nouns: w("phone camera battery screen laptop charger speaker price design case"),
    positive: w("reliable sharp"),
    negative: w("broken flimsy faulty slow overpriced"),
    neutral: ["i bought it last {period}", "i have used it for {count} {period}s", "i got the {n}"],
  },
};
const DOMAIN_NAMES = Object.keys(DOMAINS);
const FILL: Record<string, readonly string[]> = {
  day: w("monday friday saturday sunday"),
  count: w("two three four"),
  who: w("friend sister brother family"),
  period: w("week month year"),
};
const VERBS_PAST = {
  1: w("loved enjoyed liked adored"),
  [-1]: w("hated disliked loathed regretted"),
};
const VERBS_BASE = { 1: w("like love enjoy"), [-1]: w("hate regret") };
const NOUNS_SENTIMENT = {
  1: w("gem joy treat delight pleasure winner"),
  [-1]: w("mess disaster waste joke letdown nightmare"),
};
const COPULAS = w("was is felt seemed looked");

const pick = <T>(random: Random, items: readonly T[]): T =>
  items[Math.floor(random() * items.length)];
const article = (word: string) => (/^[aeiou]/.test(word) ? "an" : "a");
const sentimentPool = (domain: Domain, p: 1 | -1) =>
  p === 1 ? [...GENERAL_POSITIVE, ...domain.positive] : [...GENERAL_NEGATIVE, ...domain.negative];

/** An adjective of `polarity`: plain (60%), intensified (20%) or "not" + the opposite (20%). */
function adjectivePhrase(
  random: Random,
  domain: Domain,
  polarity: Polarity,
  allowNot = true,
): string[] {
  if (polarity === 0) return [pick(random, NEUTRAL_ADJECTIVES)];
  const r = random();
  if (r < 0.6 || (!allowNot && r >= 0.8)) return [pick(random, sentimentPool(domain, polarity))];
  if (r < 0.8) return [pick(random, INTENSIFIERS), pick(random, sentimentPool(domain, polarity))];
  return ["not", pick(random, sentimentPool(domain, polarity === 1 ? -1 : 1))];
}

/** A neutral clause: a neutral adjective, or one of the domain's scene-setting sentences. */
function neutralClause(random: Random, domain: Domain, noun: string): string[] {
  if (random() < 0.4) {
    return ["the", noun, pick(random, COPULAS), ...adjectivePhrase(random, domain, 0)];
  }
  return w(pick(random, domain.neutral)).map((token) => {
    if (token === "{n}") return noun;
    const slot = /^\{(\w+)\}(s?)$/.exec(token);
    return slot ? pick(random, FILL[slot[1]]) + slot[2] : token;
  });
}

/** One clause of `polarity` about a noun of `domain`, as tokens. */
function clause(random: Random, domain: Domain, polarity: Polarity): string[] {
  const noun = pick(random, domain.nouns);
  if (polarity === 0) return neutralClause(random, domain, noun);
  const p = polarity;
  const form = random();
  if (form < 0.45) {
    return ["the", noun, pick(random, COPULAS), ...adjectivePhrase(random, domain, p)];
  }
  if (form < 0.6) {
    const adjective = adjectivePhrase(random, domain, p, false);
    return [...w(pick(random, ["it was", "what"])), article(adjective[0]), ...adjective, noun];
  }
  if (form < 0.75) {
    return random() < 0.7
      ? ["i", pick(random, VERBS_PAST[p]), "the", noun]
      : ["i", "did", "not", pick(random, VERBS_BASE[p === 1 ? -1 : 1]), "the", noun];
  }
  if (form < 0.87) {
    const how = p === 1
      ? (random() < 0.4 ? [pick(random, ["really", "truly"])] : [])
      : [pick(random, NEGATORS)];
    return ["i", "would", ...how, "recommend", "this", noun];
  }
  const degree = random() < 0.3 ? [p === 1 ? "real" : "total"] : [];
  return ["the", noun, "was", "a", ...degree, pick(random, NOUNS_SENTIMENT[p])];
}

/**
 * One clause of the given polarity about a random domain (for tests of the grammar against the
 * reward: a clause's {@link sentimentScore} has the sign of its polarity).
 */
export function sampleClause(random: Random, polarity: Polarity): string {
  return clause(random, DOMAINS[pick(random, DOMAIN_NAMES)], polarity).join(" ");
}

/** Fewest and most tokens (words and punctuation) of a review. */
export const REVIEW_TOKENS = { min: 8, max: 20 } as const;

function reviewTokens(random: Random): string[] {
  const domain = DOMAINS[pick(random, DOMAIN_NAMES)];
  const tokens: string[] = [];
  if (random() < 0.2) tokens.push(...clause(random, domain, 0), ",");
  let polarity: Polarity = random() < 0.1 ? 0 : random() < 0.5 ? 1 : -1;
  const clauses = 1 + (random() < 0.8 ? 1 : 0) + (random() < 0.3 ? 1 : 0);
  tokens.push(...clause(random, domain, polarity));
  for (let i = 1; i < clauses; i++) {
    const r = random();
    let next: Polarity;
    let joiner: string[];
    if (polarity !== 0 && r < 0.45) {
      // A switch of sentiment: the prefix does not decide the continuation.
      next = polarity === 1 ? -1 : 1;
      joiner = pick(random, [["but"], [",", "but"], [".", "however", ","]]);
    } else if (r < 0.9) {
      next = polarity !== 0 ? polarity : random() < 0.5 ? 1 : -1;
      joiner = pick(random, [["and"], [",", "and"], ["."]]);
    } else {
      next = 0;
      joiner = pick(random, [[","], ["."]]);
    }
    tokens.push(...joiner, ...clause(random, domain, next));
    polarity = next;
  }
  tokens.push(random() < 0.15 ? "!" : ".");
  return tokens;
}

/**
 * One review, tokens separated by single spaces ("the soup was cold , but i loved the bread ."),
 * {@link REVIEW_TOKENS} long: longer or shorter draws are redrawn.
 */
export function generateReview(random: Random): string {
  for (;;) {
    const tokens = reviewTokens(random);
    if (tokens.length >= REVIEW_TOKENS.min && tokens.length <= REVIEW_TOKENS.max) {
      return tokens.join(" ");
    }
  }
}

/**
 * Cuts a review after 2-8 of its tokens (leaving at least 5, so that the completion has room to
 * carry sentiment) into TRL's prompt-completion form: the completion starts with a space, so
 * `prompt + completion` is the review.
 */
export function splitReview(
  review: string,
  random: Random,
): { prompt: string; completion: string } {
  const tokens = review.split(" ");
  const most = Math.min(8, tokens.length - 5);
  const cut = 2 + Math.floor(random() * (most - 1));
  return { prompt: tokens.slice(0, cut).join(" "), completion: " " + tokens.slice(cut).join(" ") };
}

/** Function words of the grammar's templates (the lexicons supply the rest). */
const FUNCTION_WORDS = w(
  "the it was what a an i did not would recommend this real total but and however we went " +
    "there for dinner lunch on ordered sat near window stayed nights checked in booked watched " +
    "with my saw read train days gave me last bought have used got",
);

/**
 * Every token of the world, in id order: the special tokens (`SPECIAL_TOKENS`), the punctuation, then the words
 * sorted. Includes every word the reward scores, so no scored word is ever `<unk>`.
 */
export function worldVocabulary(): string[] {
  const words = new Set<string>([
    ...FUNCTION_WORDS,
    ...GENERAL_POSITIVE,
    ...GENERAL_NEGATIVE,
    ...NEUTRAL_ADJECTIVES,
    ...Object.values(DOMAINS).flatMap((d) => [...d.nouns, ...d.positive, ...d.negative]),
    ...Object.values(FILL).flat(),
    ...FILL.period.map((p) => p + "s"),
    ...Object.values(VERBS_PAST).flat(),
    ...Object.values(VERBS_BASE).flat(),
    ...Object.values(NOUNS_SENTIMENT).flat(),
    ...COPULAS,
    ...NEGATORS,
    ...INTENSIFIERS,
    ...POSITIVE_WORDS,
    ...NEGATIVE_WORDS,
  ]);
  return [...SPECIAL_TOKENS, ",", ".", "!", ...[...words].sort()];
}

/** Options of {@link generateWorld}; the defaults make the shipped `data/`. */
export interface WorldOptions {
  /** Seed of every stream. @default 0 */
  seed?: number;
  /** Pretraining reviews in `corpus.jsonl`. @default 4000 */
  corpusRows?: number;
  /** Prompt-completion rows in `sft.jsonl`. @default 1000 */
  sftRows?: number;
  /** Rows in `sft_eval.jsonl`. @default 100 */
  sftEvalRows?: number;
  /** Held-out prompts in `prompts_eval.jsonl`. @default 64 */
  evalPrompts?: number;
}

const jsonl = (rows: readonly unknown[]) => rows.map((r) => JSON.stringify(r) + "\n").join("");
const prefixes = (review: string) => {
  const tokens = review.split(" ");
  return Array.from({ length: 7 }, (_, i) => tokens.slice(0, i + 2).join(" "));
};

/**
 * The text files of the world, by file name: `tokenizer.json`, `tokenizer_config.json`,
 * `corpus.jsonl` (`{"text"}`), `sft.jsonl` and `sft_eval.jsonl` (`{"prompt", "completion"}`),
 * `prompts_eval.jsonl` (`{"prompt"}`). Each file has its own stream, `mixSeed(seed, k)`.
 * Evaluation rows come from reviews that no training file holds, and an evaluation prompt is
 * never a prefix of a training review (so it is never a training prompt either).
 */
export function generateWorld(options: WorldOptions = {}): Record<string, string> {
  const {
    seed = 0,
    corpusRows = 4000,
    sftRows = 1000,
    sftEvalRows = 100,
    evalPrompts = 64,
  } = options;
  const stream = (k: number) => seededRandom(mixSeed(seed, k));
  const corpusRandom = stream(1);
  const corpus = Array.from({ length: corpusRows }, () => generateReview(corpusRandom));
  const sftRandom = stream(2);
  const sftReviews = Array.from({ length: sftRows }, () => generateReview(sftRandom));
  const training = new Set([...corpus, ...sftReviews]);
  const seenPrefixes = new Set([...training].flatMap(prefixes));
  const evalRandom = stream(3);
  const sftEval: Array<{ prompt: string; completion: string }> = [];
  while (sftEval.length < sftEvalRows) {
    const review = generateReview(evalRandom);
    if (!training.has(review)) sftEval.push(splitReview(review, evalRandom));
  }
  const promptRandom = stream(4);
  const prompts = new Set<string>();
  while (prompts.size < evalPrompts) {
    const review = generateReview(promptRandom);
    const { prompt } = splitReview(review, promptRandom);
    if (!training.has(review) && !seenPrefixes.has(prompt)) prompts.add(prompt);
  }
  return {
    "tokenizer.json": JSON.stringify(worldTokenizerJson(worldVocabulary()), null, 1) + "\n",
    "tokenizer_config.json": JSON.stringify(worldTokenizerConfig(), null, 1) + "\n",
    "corpus.jsonl": jsonl(corpus.map((text) => ({ text }))),
    "sft.jsonl": jsonl(sftReviews.map((review) => splitReview(review, sftRandom))),
    "sft_eval.jsonl": jsonl(sftEval),
    "prompts_eval.jsonl": jsonl([...prompts].map((prompt) => ({ prompt }))),
  };
}

/** Writes {@link generateWorld}'s files into `dir` (created if missing); returns their names. */
export async function writeWorld(
  store: FileStore,
  dir: string,
  options: WorldOptions = {},
): Promise<string[]> {
  const files = generateWorld(options);
  await store.mkdirp(dir);
  const encoder = new TextEncoder();
  for (const [name, text] of Object.entries(files)) {
    await store.writeFileAtomic(joinPath(dir, name), encoder.encode(text));
  }
  return Object.keys(files);
}
