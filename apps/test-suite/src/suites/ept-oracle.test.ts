import { EPT_ACCESS, EPT_OUTCOME } from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { expectEptWalk, FINAL_LINEAR } from "./ept-oracle";

const ORACLE = { executeOnly: true, maxPhysAddr: 46 };
/** A 4-level walk whose PTE has `xwr` (upper levels RWX), WB memory type. */
function walk(xwr: number, access: number, options = ORACLE) {
  const upper = { lo: 0x1000 | 7, hi: 0 };
  return expectEptWalk(
    [upper, upper, upper, { lo: 0x2000 | (6 << 3) | xwr, hi: 0 }],
    4,
    access,
    FINAL_LINEAR,
    options,
  );
}

describe("expectEptWalk: vmx-tests.md §8's table", () => {
  const R = EPT_ACCESS.READ;
  const W = EPT_ACCESS.WRITE;
  const X = EPT_ACCESS.FETCH;
  it.each([
    [0, R, EPT_OUTCOME.VIOLATION, 0x181],
    [0, W, EPT_OUTCOME.VIOLATION, 0x182],
    [0, X, EPT_OUTCOME.VIOLATION, 0x184],
    [1, R, EPT_OUTCOME.OK, 0],
    [1, W, EPT_OUTCOME.VIOLATION, 0x18a],
    [1, X, EPT_OUTCOME.VIOLATION, 0x18c],
    [2, R, EPT_OUTCOME.MISCONFIG, 0],
    [3, X, EPT_OUTCOME.VIOLATION, 0x19c],
    [4, R, EPT_OUTCOME.VIOLATION, 0x1a1],
    [4, W, EPT_OUTCOME.VIOLATION, 0x1a2],
    [4, X, EPT_OUTCOME.OK, 0],
    [5, W, EPT_OUTCOME.VIOLATION, 0x1aa],
    [6, R, EPT_OUTCOME.MISCONFIG, 0],
    [7, W, EPT_OUTCOME.OK, 0],
  ])("PTE XWR %i, access %i → outcome %i, qualification %i", (xwr, access, outcome, qualification) => {
    expect(walk(xwr, access)).toEqual({ outcome, qualification });
  });

  it("execute-only without the capability is a misconfiguration", () => {
    expect(walk(4, R, { executeOnly: false, maxPhysAddr: 46 }).outcome).toBe(EPT_OUTCOME.MISCONFIG);
  });

  it("reserved bits misconfigure a present entry and are ignored in a non-present one", () => {
    const upper = { lo: 0x1000 | 7, hi: 0 };
    const bad = { lo: 0x2000 | (6 << 3) | 7, hi: 1 << (47 - 32) };
    expect(expectEptWalk([upper, upper, upper, bad], 4, 1, FINAL_LINEAR, ORACLE).outcome).toBe(
      EPT_OUTCOME.MISCONFIG,
    );
    expect(expectEptWalk([upper, upper, upper, { ...bad, lo: 0x2000 }], 4, 1, FINAL_LINEAR, ORACLE)).toEqual({
      outcome: EPT_OUTCOME.VIOLATION,
      qualification: 0x181,
    });
  });

  it("memory types 2, 3 and 7 misconfigure a leaf; bits 6:3 a non-leaf PDE", () => {
    const upper = { lo: 0x1000 | 7, hi: 0 };
    for (const type of [2, 3, 7]) {
      expect(
        expectEptWalk([upper, upper, upper, { lo: (type << 3) | 7, hi: 0 }], 4, 1, 0, ORACLE).outcome,
      ).toBe(EPT_OUTCOME.MISCONFIG);
    }
    expect(expectEptWalk([upper, upper, { lo: 0x1000 | 0x8 | 7, hi: 0 }], 4, 1, 0, ORACLE).outcome).toBe(
      EPT_OUTCOME.MISCONFIG,
    );
  });
});
