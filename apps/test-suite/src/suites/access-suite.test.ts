import {
  PageWalker,
  type PageWalkerOptions,
  type PagingContext,
  type PhysicalMemory,
} from "@nestvisor/x86-arch";
import { describe, expect, it } from "vitest";
import { modelWith, runSuite, verdicts } from "../testing/run-suite";
import { ACCESS_SUITE } from "./access-suite";

/** A walker that forgets the I/D bit of the #PF error code (a plausible model bug). */
class NoFetchBitWalker extends PageWalker {
  override walk(ctx: PagingContext, laLo: number, laHi: number, access: number): boolean {
    const ok = super.walk(ctx, laLo, laHi, access);
    if (!ok) this.result.errorCode &= ~16;
    return ok;
  }
}

describe("access suite", () => {
  it("passes on the project's model: walker, shadow paging, TDP and shadow EPT", () => {
    const groups = runSuite(ACCESS_SUITE, /^access\//);
    expect(verdicts(groups)).toEqual([
      "access/walker PASS",
      "access/walker-5level PASS",
      "access/walker-kvm-ad PASS",
      "access/shadow-paging PASS",
      "access/tdp PASS",
      "access/shadow-ept PASS",
      "access/shadow-ept-no-ad PASS",
      "access/smap PASS",
      "access/pku PASS",
    ]);
    for (const g of groups) expect(g.cases).toBe(g.planned);
    expect(groups[0]!.cases).toBe(57_999_360 / 16);
  });

  it("passes under the oldest preset too (the MMU flags change how shadow pages are reused)", () => {
    expect(
      verdicts(runSuite(ACCESS_SUITE, /^access\/(shadow-paging|shadow-ept)$/, { preset: "none" })),
    ).toEqual(["access/shadow-paging PASS", "access/shadow-ept PASS"]);
  });

  it("a walker that drops the I/D error-code bit fails, naming the case and both error codes", () => {
    const model = modelWith("no-fetch-bit", {
      pageWalker: (memory: PhysicalMemory, options: PageWalkerOptions) =>
        new NoFetchBitWalker(memory, options),
    });
    const [g] = runSuite(ACCESS_SUITE, /^access\/walker$/, { model });
    expect(g!.verdict).toBe("FAIL");
    expect(g!.messages[0]).toMatch(
      /access_fetch.*: supervisor fetch: #PF error code 0x[0-9a-f]+, expected 0x[0-9a-f]+|access_fetch.*fetch.*error code/,
    );
  });
});
