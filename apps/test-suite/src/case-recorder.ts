/** Failure messages a group keeps (the count goes on past it). */
export const MAX_MESSAGES = 8;

/**
 * Where a group records its cases: each case passes or fails, with a message that names the case
 * and the cause. Hot loops call `pass()` / `fail(message)` directly so that a passing case costs
 * one increment; `check` takes the message lazily for code that is not hot.
 */
export class CaseRecorder {
  passed = 0;
  failed = 0;
  /** The first `MAX_MESSAGES` failure messages, in order. */
  readonly messages: string[] = [];
  /** Set by `skip`: the group cannot run against this model or configuration. */
  skipReason: string | null = null;

  /** Cases recorded so far. */
  get count(): number {
    return this.passed + this.failed;
  }

  pass(n = 1): void {
    this.passed += n;
  }

  fail(message: string): void {
    this.failed++;
    if (this.messages.length < MAX_MESSAGES) this.messages.push(message);
  }

  /** One case: passes when `ok`, else fails with `message()`. Returns `ok`. */
  check(ok: boolean, message: () => string): boolean {
    if (ok) this.passed++;
    else this.fail(message());
    return ok;
  }

  /** One case comparing two values with `Object.is` (numbers, strings, booleans). */
  equal(what: string, actual: unknown, expected: unknown): boolean {
    if (Object.is(actual, expected)) {
      this.passed++;
      return true;
    }
    this.fail(`${what}: got ${show(actual)}, expected ${show(expected)}`);
    return false;
  }

  /** The group does not apply (a configuration the model does not support, a part it lacks). */
  skip(reason: string): void {
    this.skipReason = reason;
  }
}

/** A value in a failure message: numbers in hex when they look like bit patterns. */
export function show(value: unknown): string {
  if (typeof value === "number") {
    if (Number.isInteger(value) && (value >= 0x100 || value < 0)) {
      return value < 0 ? `-0x${(-value).toString(16)}` : `0x${value.toString(16)}`;
    }
    return String(value);
  }
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `0x${value.toString(16)}`;
  return JSON.stringify(value) ?? String(value);
}

/** `n` as 0x-hex. */
export function hex(n: number): string {
  return n < 0 ? `-0x${(-n).toString(16)}` : `0x${n.toString(16)}`;
}
