import assert from "node:assert/strict";
import { MOSAIC_WORDS } from "../src/data/mosaic.ts";
import {
  ClipTokenizer,
  splitWords,
  tokenizerFromJson,
  type TokenizerJson,
  WordTokenizer,
} from "../src/data/tokenizer.ts";

Deno.test("ClipTokenizer.encode() gives OpenAI's ids for 'a photo of a cat', padded with 0", () => {
  const tok = new ClipTokenizer();
  assert.deepEqual([...tok.encode("a photo of a cat", 7)], [49406, 320, 1125, 539, 320, 2368, 49407]);
  assert.deepEqual([...tok.encode("a photo of a cat", 10)], [
    49406,
    320,
    1125,
    539,
    320,
    2368,
    49407,
    0,
    0,
    0,
  ]);
  assert.equal(tok.vocabSize, 49408);
  assert.equal(tok.eotId, 49407);
  assert.equal(tok.decode(tok.encode("A Photo of a cat!", 12)), "a photo of a cat !");
});

Deno.test("ClipTokenizer.encode() truncates a long text and keeps EOT as the last id", () => {
  const tok = new ClipTokenizer();
  const full = tok.encode("a photo of a cat", 7);
  const cut = tok.encode("a photo of a cat", 5);
  assert.deepEqual([...cut], [49406, 320, 1125, 539, 49407]);
  assert.deepEqual([...cut.subarray(0, 4)], [...full.subarray(0, 4)]);
  assert.deepEqual([...tok.encode("", 4)], [49406, 49407, 0, 0]);
});

Deno.test("WordTokenizer.fromTexts() numbers pad 0, SOT 1, UNK 2, words sorted, EOT last", () => {
  const tok = WordTokenizer.fromTexts(["the red cat", "a blue cat"]);
  assert.deepEqual(tok.vocabulary, ["<pad>", "<sot>", "<unk>", "a", "blue", "cat", "red", "the", "<eot>"]);
  assert.equal(tok.vocabSize, 9);
  assert.equal(tok.eotId, tok.vocabSize - 1);
  assert.deepEqual([...tok.encode("a red dog", 7)], [1, 3, 6, 2, 8, 0, 0]);
  assert.equal(tok.decode(tok.encode("the blue cat", 8)), "the blue cat");
});

Deno.test("WordTokenizer.fromTexts() with vocabSize 64 puts EOT at 63, as the spec's eot_token_id", () => {
  const tok = WordTokenizer.fromTexts(MOSAIC_WORDS, { vocabSize: 64 });
  assert.equal(tok.vocabSize, 64);
  assert.equal(tok.eotId, 63);
  const ids = tok.encode("a small red seven above a large blue two", 12);
  assert.equal(ids[0], tok.sotId);
  assert.equal(ids[10], 63);
  assert.equal(ids[11], 0);
  assert.ok(!ids.includes(tok.unkId), "every mosaic word is in the vocabulary");
  assert.equal(tok.decode(tok.encode("small white ankle boot", 8)), "small white ankle boot");
  assert.equal(tok.decode(tok.encode("large cyan t-shirt", 8)), "large cyan t-shirt");
});

Deno.test("WordTokenizer.encode() truncates with EOT kept last", () => {
  const tok = WordTokenizer.fromTexts(MOSAIC_WORDS, { vocabSize: 64 });
  const ids = tok.encode("a small red seven above a large blue two", 4);
  assert.deepEqual([...ids], [tok.sotId, tok.tokens("a")[0], tok.tokens("small")[0], 63]);
});

Deno.test("WordTokenizer.fromTexts() refuses a vocabSize too small, naming the counts", () => {
  assert.throws(
    () => WordTokenizer.fromTexts(["a b c d"], { vocabSize: 6 }),
    /4 words \+ 4 specials = 8 ids do not fit in vocabSize 6/,
  );
});

Deno.test("tokenizers reject a context length below 2", () => {
  const tok = WordTokenizer.fromTexts(["a"]);
  assert.throws(() => tok.encode("a", 1), RangeError);
  assert.throws(() => new ClipTokenizer().encode("a", 0), /context length must be an integer >= 2/);
});

Deno.test("tokenizerFromJson() rebuilds both kinds from JSON so they give the same ids", () => {
  const word = WordTokenizer.fromTexts(MOSAIC_WORDS, { vocabSize: 64 });
  const clip = new ClipTokenizer();
  for (const tok of [word, clip]) {
    const json = JSON.parse(JSON.stringify(tok));
    assert.equal(json.kind, tok.kind);
    const back = tokenizerFromJson(json);
    assert.equal(back.eotId, tok.eotId);
    assert.equal(back.vocabSize, tok.vocabSize);
    assert.deepEqual(back.encode("small red seven", 8), tok.encode("small red seven", 8));
  }
  assert.deepEqual(clip.toJSON(), { kind: "clip-bpe", vocabulary: "bpe_simple_vocab_16e6" });
  assert.throws(
    () => tokenizerFromJson({ kind: "sentencepiece" } as unknown as TokenizerJson),
    /unknown tokenizer kind "sentencepiece"/,
  );
});

Deno.test("WordTokenizer's constructor checks the specials of a stored vocabulary", () => {
  assert.throws(() => new WordTokenizer(["<sot>", "<pad>", "<unk>", "<eot>"]), /"<pad>" must be id 0/);
  assert.throws(() => new WordTokenizer(["<pad>", "<sot>", "<eot>"]), /lacks the special "<unk>"/);
  assert.throws(() => new WordTokenizer(["<pad>", "<sot>", "<unk>", "a", "a", "<eot>"]), /"a" appears twice/);
});

Deno.test("splitWords() keeps hyphenated words whole and splits punctuation off", () => {
  assert.deepEqual(splitWords("A T-shirt, an ankle boot."), [
    "a",
    "t-shirt",
    ",",
    "an",
    "ankle",
    "boot",
    ".",
  ]);
  assert.deepEqual(splitWords("   "), []);
});
