import { describe, expect, it } from "vitest";
import { CaseRecorder, hex, MAX_MESSAGES, show } from "./case-recorder";

describe("CaseRecorder", () => {
  it("counts passes and failures and keeps the first messages only", () => {
    const rec = new CaseRecorder();
    rec.pass();
    rec.pass(3);
    for (let i = 0; i < MAX_MESSAGES + 5; i++) rec.fail(`case ${i}`);
    expect(rec.passed).toBe(4);
    expect(rec.failed).toBe(MAX_MESSAGES + 5);
    expect(rec.count).toBe(4 + MAX_MESSAGES + 5);
    expect(rec.messages).toHaveLength(MAX_MESSAGES);
    expect(rec.messages[0]).toBe("case 0");
  });

  it("check takes its message lazily; equal compares with Object.is and shows hex", () => {
    const rec = new CaseRecorder();
    let built = 0;
    expect(rec.check(true, () => `${++built}`)).toBe(true);
    expect(built).toBe(0);
    expect(rec.check(false, () => "boom")).toBe(false);
    expect(rec.equal("reason", 0x1234, 0x1234)).toBe(true);
    expect(rec.equal("reason", 0x80000021, 18)).toBe(false);
    expect(rec.messages).toEqual(["boom", "reason: got 0x80000021, expected 18"]);
  });

  it("skip records the reason", () => {
    const rec = new CaseRecorder();
    rec.skip("no levels");
    expect(rec.skipReason).toBe("no levels");
  });

  it("show and hex format values for messages", () => {
    expect(show(7)).toBe("7");
    expect(show(0x100)).toBe("0x100");
    expect(show(-0x100)).toBe("-0x100");
    expect(show("a")).toBe('"a"');
    expect(show(0x10n)).toBe("0x10");
    expect(show({ a: 1 })).toBe('{"a":1}');
    expect(hex(255)).toBe("0xff");
    expect(hex(-2)).toBe("-0x2");
  });
});
