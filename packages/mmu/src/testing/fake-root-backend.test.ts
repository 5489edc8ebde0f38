import { describe, expect, it } from "vitest";
import { PAGE_ROLE } from "../page-role";
import { NO_SHADOW_PAGE } from "../root-backend";
import { FakeRootBackend } from "./fake-root-backend";

const TDP = 0x3784;
const SHADOW = 0x3704;
const PAE = 0x3703;

describe("FakeRootBackend", () => {
  it("finds the same page for the same role and gfn, counting references", () => {
    const b = new FakeRootBackend();
    const a = b.allocDirectRoot(TDP);
    expect(b.allocDirectRoot(TDP)).toBe(a);
    expect(b.refCount(a)).toBe(2);
    expect(b.allocShadowRoot(SHADOW, 0x5003)).toBe(b.allocShadowRoot(SHADOW, 0x5000)); // same gfn
    expect(b.allocShadowRoot(SHADOW, 0x6000)).not.toBe(b.allocShadowRoot(SHADOW, 0x5000));
    expect(b.rootRoleWord(a)).toBe(TDP);
    expect(b.created).toBe(3);
  });

  it("keeps pages after the last put unless destroyOnLastPut", () => {
    const legacy = new FakeRootBackend();
    const r = legacy.allocDirectRoot(TDP);
    legacy.putRoot(r);
    expect(legacy.livePages).toBe(1);
    expect(legacy.allocDirectRoot(TDP)).toBe(r);

    const oldTdp = new FakeRootBackend({ destroyOnLastPut: true });
    const t = oldTdp.allocDirectRoot(TDP);
    oldTdp.putRoot(t);
    expect(oldTdp.destroyed).toBe(1);
    expect(oldTdp.allocDirectRoot(TDP)).not.toBe(t);
    expect(() => oldTdp.putRoot(t)).toThrow(/not a live root/);
  });

  it("hands out special roots below level 4, with no page behind them", () => {
    const b = new FakeRootBackend();
    const s = b.allocShadowRoot(PAE, 0x5000);
    expect(b.rootRoleWord(s)).toBe(NO_SHADOW_PAGE);
    expect(b.isObsoleteRoot(s)).toBe(true);
    expect(b.allocShadowRoot(PAE, 0x5000)).not.toBe(s);
    b.putRoot(s);
    expect(b.liveSpecials).toBe(1);
  });

  it("zapped roots read back invalid and leave the hash; obsolete pages are replaced", () => {
    const b = new FakeRootBackend();
    const r = b.allocDirectRoot(TDP);
    b.zap(r);
    expect(b.rootRoleWord(r)).toBe((TDP | PAGE_ROLE.INVALID) >>> 0);
    expect(b.isObsoleteRoot(r)).toBe(true);
    expect(b.allocDirectRoot(TDP)).not.toBe(r);
    b.putRoot(r);
    expect(b.refCount(r)).toBe(0);

    const c = new FakeRootBackend();
    const x = c.allocDirectRoot(TDP);
    c.obsoleteAll();
    expect(c.isObsoleteRoot(x)).toBe(true);
    expect(c.allocDirectRoot(TDP)).not.toBe(x);
    expect(() => c.putRoot(0x12345000)).toThrow(/not a live root/);
  });
});
