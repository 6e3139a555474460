/** Small assertions with messages (node:assert/strict is heavier to read in failures). */

/** Throws `message` unless `condition`. */
export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new Error(message);
}

/** Throws unless `actual` and `expected` are equal (by JSON for arrays and objects). */
export function assertEquals(actual: unknown, expected: unknown, message = ""): void {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${message ? message + ": " : ""}got ${a}, expected ${e}`);
}
