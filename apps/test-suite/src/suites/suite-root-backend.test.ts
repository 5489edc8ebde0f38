import { NO_SHADOW_PAGE } from "@nestvisor/mmu";
import { describe, expect, it } from "vitest";
import { SuiteRootBackend } from "./suite-root-backend";

describe("SuiteRootBackend", () => {
  it("returns the same page for the same (role, gfn), counting references and new pages", () => {
    const b = new SuiteRootBackend();
    const role4 = 0x3704;
    const a = b.allocShadowRoot(role4, 0x10_0000);
    expect(b.allocShadowRoot(role4, 0x10_0fff)).toBe(a); // same gfn
    expect(b.allocShadowRoot(role4, 0x11_0000)).not.toBe(a);
    expect(b.created).toBe(2);
    expect(b.refs(a)).toBe(2);
    expect(b.rootRoleWord(a)).toBe(role4);
    expect(b.gfnOf(a)).toBe(0x100);
    b.putRoot(a);
    b.putRoot(a);
    expect(b.refs(a)).toBe(0);
    expect(b.isObsoleteRoot(a)).toBe(false); // pages outlive their last reference
    expect(() => b.putRoot(a)).toThrow(/without a reference/);
  });

  it("gives level-3 roots no page (special roots)", () => {
    const b = new SuiteRootBackend();
    const special = b.allocShadowRoot(0x3703, 0x1000);
    expect(b.rootRoleWord(special)).toBe(NO_SHADOW_PAGE);
    expect(b.isObsoleteRoot(special)).toBe(true);
    b.putRoot(special);
    expect(() => b.rootRoleWord(special)).toThrow(/not a root page/);
  });
});
