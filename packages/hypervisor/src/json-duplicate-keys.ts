/**
 * Duplicate keys in JSON text. `JSON.parse` accepts `{"a": 1, "a": 2}` and keeps the last value, so
 * a file that says two things about one field would be read as saying one of them, silently. This
 * is a single tokenizer pass over the text: objects nest on an explicit stack (no recursion, so
 * any nesting depth), each open object keeps a `Map` of its keys, and keys are compared after their
 * escapes are decoded (`"a"` and `"\u0061"` are the same key, as for `JSON.parse`). Time and memory
 * are linear in the text.
 */

/** One key given a second (or later) time in the same object. */
export interface JsonDuplicateKey {
  /** The key, escapes decoded. */
  readonly key: string;
  /**
   * Path from the root to the duplicated key, ending with the key itself: object keys, and array
   * indices as decimal strings (`["events", "VMREAD", "cycles"]`).
   */
  readonly path: readonly string[];
  /** 1-based line and column (UTF-16 code units) of the opening quote of this occurrence. */
  readonly line: number;
  readonly column: number;
  /** 1-based line and column of the first occurrence of the key in the same object. */
  readonly firstLine: number;
  readonly firstColumn: number;
}

export interface JsonDuplicateKeys {
  /** The first duplicates in text order, at most `limit` of them. */
  readonly found: readonly JsonDuplicateKey[];
  /** How many duplicates the text holds in all (`found.length` when not more than `limit`). */
  readonly count: number;
}

/** An open object or array on the scanner's stack. */
interface Frame {
  /** The object's keys so far, each with the offset of its first occurrence; null for an array. */
  readonly keys: Map<string, number> | null;
  /** Object: whether the next string is a key. */
  expectKey: boolean;
  /** Object: the key whose value is being read. */
  key: string;
  /** Array: the index of the element being read. */
  index: number;
}

/** Offsets at which lines start, for the 1-based line and column of an offset. */
function lineStarts(text: string): number[] {
  const starts = [0];
  let at = text.indexOf("\n");
  while (at >= 0) {
    starts.push(at + 1);
    at = text.indexOf("\n", at + 1);
  }
  return starts;
}

function position(starts: readonly number[], offset: number): { line: number; column: number } {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return { line: lo + 1, column: offset - starts[lo]! + 1 };
}

/**
 * The keys `text` gives more than once in one object. Meant for text `JSON.parse` accepted; on
 * other text it reports what it finds up to where the text stops making sense, and never throws.
 * At most `limit` duplicates are described (with their path and positions); all are counted.
 */
export function jsonDuplicateKeys(text: string, limit = 100): JsonDuplicateKeys {
  const stack: Frame[] = [];
  const pending: { key: string; path: string[]; offset: number; first: number }[] = [];
  let count = 0;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // A string: find its closing quote (a backslash escapes the character after it).
      let j = i + 1;
      let escaped = false;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 0x22) break;
        if (d === 0x5c) {
          escaped = true;
          j++;
        }
        j++;
      }
      const top = stack[stack.length - 1];
      if (top !== undefined && top.keys !== null && top.expectKey) {
        let key = text.slice(i + 1, j);
        if (escaped) {
          try {
            key = JSON.parse(text.slice(i, j + 1)) as string;
          } catch {
            // Not valid JSON: compare the key as written.
          }
        }
        top.expectKey = false;
        top.key = key;
        const first = top.keys.get(key);
        if (first === undefined) top.keys.set(key, i);
        else {
          count++;
          if (pending.length < limit) {
            const path: string[] = [];
            for (let k = 0; k < stack.length - 1; k++) {
              const frame = stack[k]!;
              path.push(frame.keys === null ? String(frame.index) : frame.key);
            }
            path.push(key);
            pending.push({ key, path, offset: i, first });
          }
        }
      }
      i = j + 1;
      continue;
    }
    if (c === 0x7b) stack.push({ keys: new Map(), expectKey: true, key: "", index: 0 });
    else if (c === 0x5b) stack.push({ keys: null, expectKey: false, key: "", index: 0 });
    else if (c === 0x7d || c === 0x5d) stack.pop();
    else if (c === 0x2c) {
      const top = stack[stack.length - 1];
      if (top !== undefined) {
        if (top.keys === null) top.index++;
        else top.expectKey = true;
      }
    }
    i++;
  }
  if (pending.length === 0) return { found: [], count };
  const starts = lineStarts(text);
  const found = pending.map(({ key, path, offset, first }) => {
    const at = position(starts, offset);
    const before = position(starts, first);
    return {
      key,
      path,
      line: at.line,
      column: at.column,
      firstLine: before.line,
      firstColumn: before.column,
    };
  });
  return { found, count };
}
