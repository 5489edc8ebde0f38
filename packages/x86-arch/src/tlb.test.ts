import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ACCESS, PAGE_ACCESS } from "./access";
import { CR0 } from "./cr0";
import {
  eptTagOf,
  INVEPT_TYPE,
  INVPCID_TYPE,
  INVVPID_TYPE,
  TLB_FLAG,
  TLB_MAPPING,
  TLB_MISS,
  Tlb,
  type TlbEntry,
} from "./tlb";

const K4 = 4096;
const M2 = 2 ** 21;
const M4 = 2 ** 22;
const G1 = 2 ** 30;
const R = ACCESS.READ;
const W = ACCESS.WRITE;
const D = TLB_FLAG.DIRTY;
const G = TLB_FLAG.GLOBAL;
const CR4_PAE = 1 << 5;
const CR4_PGE = 1 << 7;
const CR4_PCIDE = 1 << 17;
const CR4_SMEP = 1 << 20;
const CR4_SMAP = 1 << 21;
const CR4_PSE = 1 << 4;

/** Inserts a 4-KiB linear/combined mapping of `la` (low word) with all permissions. */
function put(tlb: Tlb, vpid: number, pcid: number, ept: number, la: number, flags: number = D, pa = 0x5000) {
  return tlb.insert(vpid, pcid, ept, la, 0, K4, pa, PAGE_ACCESS.ALL, 0, flags);
}

function hits(tlb: Tlb, vpid: number, pcid: number, ept: number, la: number, laHi = 0): boolean {
  return tlb.lookup(vpid, pcid, ept, la, laHi, R) !== TLB_MISS;
}

describe("Tlb lookups", () => {
  it("hits a cached 4-KiB page, returns its data and counts per kind", () => {
    const tlb = new Tlb();
    const i = tlb.insert(0, 0, 0, 0x7000, 0, K4, 0x12_3456, PAGE_ACCESS.WRITE | PAGE_ACCESS.USER, 5, D);
    expect(tlb.frameAddress(i)).toBe(0x12_3000);
    const hit = tlb.lookup(0, 0, 0, 0x7abc, 0, R);
    expect(hit).toBe(i);
    expect(tlb.physicalAddress(hit, 0x7abc)).toBe(0x12_3abc);
    expect(tlb.pageSize(hit)).toBe(K4);
    expect(tlb.pageAccess(hit)).toBe(PAGE_ACCESS.WRITE | PAGE_ACCESS.USER);
    expect(tlb.protectionKey(hit)).toBe(5);
    expect(tlb.isGlobal(hit)).toBe(false);
    expect(tlb.isDirty(hit)).toBe(true);
    expect(tlb.lookup(0, 0, 0, 0x8000, 0, R)).toBe(TLB_MISS);
    const s = tlb.stats();
    expect(s.hits).toEqual({ linear: 1, combined: 0, guestPhysical: 0 });
    expect(s.misses).toEqual({ linear: 1, combined: 0, guestPhysical: 0 });
    expect(s.inserts.linear).toBe(1);
    expect(s.entries.linear).toBe(1);
  });

  it("finds large pages of every size covering the address, with the offset inside the page", () => {
    const tlb = new Tlb();
    tlb.insert(0, 0, 0, 0x40_0000, 0, M2, 0x8000_0000, PAGE_ACCESS.ALL, 0, D);
    tlb.insert(0, 0, 0, 0x80_0000, 0, M4, 0x1_0000_0000, PAGE_ACCESS.ALL, 0, D);
    // A 1-GiB page high in a 57-bit address space (bits 56:32 = 0x1ff_ffff).
    tlb.insert(0, 0, 0, 0xc000_0000, 0x1ff_ffff, G1, 2 ** 45, PAGE_ACCESS.ALL, 0, D);
    const a = tlb.lookup(0, 0, 0, 0x5f_fffc, 0, R);
    expect(tlb.pageSize(a)).toBe(M2);
    expect(tlb.physicalAddress(a, 0x5f_fffc)).toBe(0x801f_fffc);
    const b = tlb.lookup(0, 0, 0, 0xbf_f000, 0, R);
    expect(tlb.pageSize(b)).toBe(M4);
    expect(tlb.physicalAddress(b, 0xbf_f000)).toBe(0x1_003f_f000);
    const c = tlb.lookup(0, 0, 0, 0xfedc_ba98, 0x1ff_ffff, R);
    expect(tlb.pageSize(c)).toBe(G1);
    expect(tlb.physicalAddress(c, 0xfedc_ba98)).toBe(2 ** 45 + 0x3edc_ba98);
    // Same low word, other high word: a different page.
    expect(hits(tlb, 0, 0, 0, 0xfedc_ba98, 0x1ff_fffe)).toBe(false);
    expect(hits(tlb, 0, 0, 0, 0x60_0000)).toBe(false);
  });

  it("keeps sign-extended (kernel) addresses apart from their low 48 bits", () => {
    const tlb = new Tlb();
    tlb.insert(0, 0, 0, 0x1000, 0xffff_8000, K4, 0x9000, PAGE_ACCESS.ALL, 0, D);
    expect(hits(tlb, 0, 0, 0, 0x1000, 0xffff_8000)).toBe(true);
    expect(hits(tlb, 0, 0, 0, 0x1000, 0x0000_8000)).toBe(false);
  });

  it("never lets a write use an entry cached with D = 0 (SDM 4.8)", () => {
    const tlb = new Tlb();
    put(tlb, 0, 0, 0, 0x3000, 0);
    expect(tlb.lookup(0, 0, 0, 0x3000, 0, R)).not.toBe(TLB_MISS);
    expect(tlb.lookup(0, 0, 0, 0x3000, 0, ACCESS.FETCH)).not.toBe(TLB_MISS);
    expect(tlb.lookup(0, 0, 0, 0x3000, 0, W)).toBe(TLB_MISS);
    expect(tlb.lookup(0, 0, 0, 0x3000, 0, W | ACCESS.USER)).toBe(TLB_MISS);
    // The re-walk sets D and caches the translation again: refreshed in place.
    put(tlb, 0, 0, 0, 0x3000, D);
    expect(tlb.size).toBe(1);
    expect(tlb.lookup(0, 0, 0, 0x3000, 0, W)).not.toBe(TLB_MISS);
  });

  it("a write skips a clean entry but may use a dirty one of another size", () => {
    const tlb = new Tlb();
    put(tlb, 0, 0, 0, 0x20_3000, 0);
    tlb.insert(0, 0, 0, 0x20_0000, 0, M2, 0x40_0000, PAGE_ACCESS.ALL, 0, D);
    const i = tlb.lookup(0, 0, 0, 0x20_3000, 0, W);
    expect(tlb.pageSize(i)).toBe(M2);
  });

  it("matches PCID, VPID and EPT tag; global entries match any PCID (SDM 4.10.2.4, 3C 28.3.2)", () => {
    const tlb = new Tlb();
    put(tlb, 1, 3, 0, 0x1000);
    put(tlb, 1, 3, 0, 0x2000, D | G);
    put(tlb, 2, 0, 7, 0x3000, D | G);
    expect(hits(tlb, 1, 3, 0, 0x1000)).toBe(true);
    expect(hits(tlb, 1, 4, 0, 0x1000)).toBe(false); // other PCID
    expect(hits(tlb, 2, 3, 0, 0x1000)).toBe(false); // other VPID
    expect(hits(tlb, 1, 3, 7, 0x1000)).toBe(false); // EPT in use: linear mappings are not used
    expect(hits(tlb, 1, 9, 0, 0x2000)).toBe(true); // global: any PCID
    expect(hits(tlb, 0, 9, 0, 0x2000)).toBe(false); // but the same VPID
    expect(hits(tlb, 2, 5, 7, 0x3000)).toBe(true); // combined global, same EP4TA
    expect(hits(tlb, 2, 5, 8, 0x3000)).toBe(false); // other EP4TA
    expect(hits(tlb, 2, 5, 0, 0x3000)).toBe(false); // EPT not in use: combined not used
    const s = tlb.stats();
    expect(s.hits.combined).toBe(1);
    expect(s.misses.combined).toBe(2);
    expect(s.entries).toEqual({ linear: 2, combined: 1, guestPhysical: 0 });
  });

  it("caches guest-physical mappings by EP4TA only", () => {
    const tlb = new Tlb();
    const tag = eptTagOf(0x1234_501e, 0x3);
    tlb.insertGuestPhysical(tag, 0x20_0000, 0, M2, 0x7_0000_0000, 0b111, D);
    const i = tlb.lookupGuestPhysical(tag, 0x20_1234, 0, W);
    expect(i).not.toBe(TLB_MISS);
    expect(tlb.physicalAddress(i, 0x20_1234)).toBe(0x7_0000_1234);
    expect(tlb.pageAccess(i)).toBe(0b111);
    expect(tlb.lookupGuestPhysical(tag + 1, 0x20_1234, 0, R)).toBe(TLB_MISS);
    // Guest-physical mappings are not linear or combined mappings.
    expect(hits(tlb, 0, 0, tag, 0x20_1234)).toBe(false);
    expect(tlb.stats().hits.guestPhysical).toBe(1);
    expect(tlb.stats().misses.guestPhysical).toBe(1);
    expect(() => tlb.insertGuestPhysical(tag, 0, 0, M4, 0, 7, D)).toThrow(RangeError);
    expect(() => tlb.insertGuestPhysical(0, 0, 0, K4, 0, 7, D)).toThrow(RangeError);
  });

  it("derives the EPT tag from EP4TA bits 51:12, never 0", () => {
    expect(eptTagOf(0, 0)).toBe(1);
    expect(eptTagOf(0x0000_501e, 0)).toBe(6);
    expect(eptTagOf(0xffff_ffff, 0xffff_ffff)).toBe(2 ** 40);
    expect(eptTagOf(0x1000_0fff, 0x8)).toBe(0x81_0001);
  });

  it("rejects bad arguments", () => {
    const tlb = new Tlb();
    expect(() => tlb.insert(0, 0, 0, 0, 0, 8192, 0, 7, 0, 0)).toThrow(RangeError);
    expect(() => tlb.insert(0x10000, 0, 0, 0, 0, K4, 0, 7, 0, 0)).toThrow(RangeError);
    expect(() => tlb.insert(0, 0x1000, 0, 0, 0, K4, 0, 7, 0, 0)).toThrow(RangeError);
    expect(() => tlb.insert(0, 0, -1, 0, 0, K4, 0, 7, 0, 0)).toThrow(RangeError);
    expect(() => tlb.invpcid(4, 0, 0)).toThrow(RangeError);
    expect(() => tlb.invvpid(4, 1)).toThrow(RangeError);
    expect(() => tlb.invept(0, 1)).toThrow(RangeError);
    expect(() => new Tlb({ sets: 3 })).toThrow(RangeError);
    expect(() => new Tlb({ ways: 0 })).toThrow(RangeError);
  });
});

describe("Tlb replacement", () => {
  it("never holds more than sets × ways entries and counts evictions", () => {
    const tlb = new Tlb({ sets: 4, ways: 2, guestPhysicalSets: 2, guestPhysicalWays: 1 });
    for (let p = 0; p < 200; p++) {
      put(tlb, p % 3, 0, 0, p * K4);
      tlb.insertGuestPhysical(1, p * K4, 0, K4, 0, 7, D);
      expect(tlb.stats().entries.linear).toBeLessThanOrEqual(8);
      expect(tlb.stats().entries.guestPhysical).toBeLessThanOrEqual(2);
    }
    expect(tlb.size).toBe(10);
    const s = tlb.stats();
    expect(s.inserts.linear).toBe(200);
    expect(s.evictions.linear).toBe(192);
    expect(s.evictions.guestPhysical).toBe(198);
  });

  it("replaces the least recently used way of the set", () => {
    const tlb = new Tlb({ sets: 1, ways: 2 });
    put(tlb, 0, 0, 0, 0xa000);
    put(tlb, 0, 0, 0, 0xb000);
    expect(hits(tlb, 0, 0, 0, 0xa000)).toBe(true); // A is now the most recent
    put(tlb, 0, 0, 0, 0xc000); // evicts B
    expect(hits(tlb, 0, 0, 0, 0xb000)).toBe(false);
    expect(hits(tlb, 0, 0, 0, 0xa000)).toBe(true);
    expect(hits(tlb, 0, 0, 0, 0xc000)).toBe(true);
    put(tlb, 0, 0, 0, 0xd000); // evicts A (C was used after A)
    expect(hits(tlb, 0, 0, 0, 0xa000)).toBe(false);
    expect(tlb.stats().evictions.linear).toBe(2);
  });

  it("fills an invalidated way before evicting", () => {
    const tlb = new Tlb({ sets: 1, ways: 2 });
    put(tlb, 0, 0, 0, 0xa000);
    put(tlb, 0, 0, 0, 0xb000);
    tlb.invlpg(0, 0, 0xa000, 0);
    put(tlb, 0, 0, 0, 0xc000);
    expect(hits(tlb, 0, 0, 0, 0xb000)).toBe(true);
    expect(tlb.stats().evictions.linear).toBe(0);
  });

  it("refreshes an entry with the same tags and page in place", () => {
    const tlb = new Tlb({ sets: 1, ways: 4 });
    const a = put(tlb, 1, 2, 0, 0xa000, D, 0x1000);
    const b = put(tlb, 1, 2, 0, 0xa000, D, 0x2000);
    expect(b).toBe(a);
    expect(tlb.size).toBe(1);
    expect(tlb.frameAddress(tlb.lookup(1, 2, 0, 0xa000, 0, R))).toBe(0x2000);
    // A global translation re-cached under another PCID is the same global entry.
    put(tlb, 1, 2, 0, 0xb000, D | G);
    put(tlb, 1, 3, 0, 0xb000, D | G);
    expect(tlb.size).toBe(2);
  });
});

describe("Tlb invalidations (SDM 4.10.4.1, 3C 28.3.3.1)", () => {
  it("MOV to CR3 with PCIDE = 0 drops non-global entries of PCID 000H in the current VPID", () => {
    const tlb = new Tlb();
    put(tlb, 1, 0, 0, 0x1000);
    put(tlb, 1, 0, 5, 0x2000); // combined: every EP4TA
    put(tlb, 1, 0, 0, 0x3000, D | G);
    put(tlb, 2, 0, 0, 0x1000); // other VPID
    expect(tlb.movToCr3(1, false, 0x9000, 0)).toBe(2);
    expect(hits(tlb, 1, 0, 0, 0x1000)).toBe(false);
    expect(hits(tlb, 1, 0, 5, 0x2000)).toBe(false);
    expect(hits(tlb, 1, 0, 0, 0x3000)).toBe(true);
    expect(hits(tlb, 2, 0, 0, 0x1000)).toBe(true);
    expect(tlb.stats().invalidations.movCr3).toEqual({ operations: 1, entries: 2 });
  });

  it("MOV to CR3 with PCIDE = 1 drops the new PCID's non-global entries unless bit 63 is set", () => {
    const tlb = new Tlb();
    put(tlb, 0, 5, 0, 0x1000);
    put(tlb, 0, 6, 0, 0x1000);
    put(tlb, 0, 5, 0, 0x2000, D | G);
    expect(tlb.movToCr3(0, true, 0x9005, 0x8000_0000)).toBe(0); // no-flush hint
    expect(hits(tlb, 0, 5, 0, 0x1000)).toBe(true);
    expect(tlb.movToCr3(0, true, 0x9005, 0)).toBe(1);
    expect(hits(tlb, 0, 5, 0, 0x1000)).toBe(false);
    expect(hits(tlb, 0, 6, 0, 0x1000)).toBe(true);
    expect(hits(tlb, 0, 5, 0, 0x2000)).toBe(true);
    expect(tlb.stats().invalidations.movCr3.operations).toBe(2);
  });

  it("a task switch drops non-global entries of PCID 000H", () => {
    const tlb = new Tlb();
    put(tlb, 0, 0, 0, 0x1000);
    put(tlb, 0, 0, 0, 0x2000, D | G);
    expect(tlb.taskSwitch(0)).toBe(1);
    expect(hits(tlb, 0, 0, 0, 0x2000)).toBe(true);
  });

  it("INVLPG drops the page's entries of the current PCID and its global entries of any PCID", () => {
    const tlb = new Tlb();
    put(tlb, 0, 1, 0, 0x5000);
    put(tlb, 0, 2, 0, 0x5000); // other PCID, non-global: kept
    put(tlb, 0, 1, 3, 0x5000); // combined, any EP4TA: dropped
    tlb.insert(0, 2, 0, 0x40_0000, 0, M2, 0, PAGE_ACCESS.ALL, 0, D | G); // global 2 MiB covering 0x40_5000
    tlb.insert(0, 1, 0, 0x40_0000, 0, M2, 0, PAGE_ACCESS.ALL, 0, D); // non-global 2 MiB, PCID 1
    put(tlb, 0, 1, 0, 0x6000); // other page: kept
    put(tlb, 1, 1, 0, 0x5000); // other VPID: kept
    expect(tlb.invlpg(0, 1, 0x5abc, 0)).toBe(2);
    expect(hits(tlb, 0, 1, 0, 0x5000)).toBe(false);
    expect(hits(tlb, 0, 2, 0, 0x5000)).toBe(true);
    expect(hits(tlb, 0, 1, 3, 0x5000)).toBe(false);
    expect(tlb.invlpg(0, 1, 0x41_2345, 0)).toBe(2); // both 2-MiB entries cover it
    expect(hits(tlb, 0, 2, 0, 0x40_0000)).toBe(false);
    expect(hits(tlb, 0, 1, 0, 0x6000)).toBe(true);
    expect(hits(tlb, 1, 1, 0, 0x5000)).toBe(true);
  });

  it("INVPCID type 0 drops the non-global entries of that PCID and page", () => {
    const tlb = new Tlb();
    put(tlb, 0, 4, 0, 0x5000);
    put(tlb, 0, 4, 0, 0x5000, D | G);
    put(tlb, 0, 3, 0, 0x5000);
    put(tlb, 0, 4, 0, 0x6000);
    expect(tlb.invpcid(INVPCID_TYPE.INDIVIDUAL_ADDRESS, 0, 4, 0x5fff, 0)).toBe(1);
    expect(tlb.entries().map((e) => [e.pcid, e.pageNumber, e.global])).toEqual(
      expect.arrayContaining([
        [null, 5, true],
        [3, 5, false],
        [4, 6, false],
      ]),
    );
    expect(tlb.size).toBe(3);
  });

  it("INVPCID type 1 drops every non-global entry of that PCID", () => {
    const tlb = new Tlb();
    put(tlb, 0, 4, 0, 0x5000);
    put(tlb, 0, 4, 9, 0x6000);
    put(tlb, 0, 4, 0, 0x7000, D | G);
    put(tlb, 0, 3, 0, 0x5000);
    expect(tlb.invpcid(INVPCID_TYPE.SINGLE_CONTEXT, 0, 4)).toBe(2);
    expect(tlb.size).toBe(2);
  });

  it("INVPCID type 2 drops every entry of the VPID, globals included; type 3 keeps globals", () => {
    const tlb = new Tlb();
    const fill = () => {
      put(tlb, 0, 1, 0, 0x1000);
      put(tlb, 0, 2, 0, 0x2000);
      put(tlb, 0, 3, 0, 0x3000, D | G);
      put(tlb, 7, 1, 0, 0x1000);
    };
    fill();
    expect(tlb.invpcid(INVPCID_TYPE.ALL_CONTEXTS, 0, 0)).toBe(2);
    expect(hits(tlb, 0, 0, 0, 0x3000)).toBe(true);
    fill();
    expect(tlb.invpcid(INVPCID_TYPE.ALL_CONTEXTS_INCLUDING_GLOBALS, 0, 0)).toBe(3);
    expect(tlb.size).toBe(1);
    expect(hits(tlb, 7, 1, 0, 0x1000)).toBe(true);
    const s = tlb.stats().invalidations;
    expect(s.invpcidAllContexts.entries).toBe(2);
    expect(s.invpcidAllContextsIncludingGlobals.entries).toBe(3);
  });

  it("INVVPID type 0 drops that VPID's entries for the address: all PCIDs, EP4TAs, globals", () => {
    const tlb = new Tlb();
    put(tlb, 3, 1, 0, 0x5000);
    put(tlb, 3, 2, 8, 0x5000);
    put(tlb, 3, 2, 0, 0x5000, D | G);
    tlb.insert(3, 1, 0, 0, 0, G1, 0, PAGE_ACCESS.ALL, 0, D);
    put(tlb, 3, 1, 0, 0x6000);
    put(tlb, 4, 1, 0, 0x5000);
    tlb.insertGuestPhysical(8, 0x5000, 0, K4, 0, 7, D);
    expect(tlb.invvpid(INVVPID_TYPE.INDIVIDUAL_ADDRESS, 3, 0x5000, 0)).toBe(4);
    expect(tlb.size).toBe(3);
    expect(hits(tlb, 3, 1, 0, 0x6000)).toBe(true);
    expect(hits(tlb, 4, 1, 0, 0x5000)).toBe(true);
    expect(tlb.lookupGuestPhysical(8, 0x5000, 0, R)).not.toBe(TLB_MISS);
  });

  it("INVVPID type 1 drops every entry of the VPID; type 3 keeps its globals", () => {
    const tlb = new Tlb();
    const fill = () => {
      put(tlb, 3, 1, 0, 0x1000);
      put(tlb, 3, 2, 8, 0x2000);
      put(tlb, 3, 2, 0, 0x3000, D | G);
      put(tlb, 4, 1, 0, 0x1000);
    };
    fill();
    expect(tlb.invvpid(INVVPID_TYPE.SINGLE_CONTEXT_RETAINING_GLOBALS, 3)).toBe(2);
    expect(hits(tlb, 3, 9, 0, 0x3000)).toBe(true);
    fill();
    expect(tlb.invvpid(INVVPID_TYPE.SINGLE_CONTEXT, 3)).toBe(3);
    expect(tlb.size).toBe(1);
  });

  it("INVVPID type 2 drops every VPID's entries except VPID 0000H's", () => {
    const tlb = new Tlb();
    put(tlb, 0, 0, 0, 0x1000);
    put(tlb, 1, 0, 0, 0x1000, D | G);
    put(tlb, 0xffff, 5, 3, 0x1000);
    tlb.insertGuestPhysical(3, 0x1000, 0, K4, 0, 7, D);
    expect(tlb.invvpid(INVVPID_TYPE.ALL_CONTEXTS, 0)).toBe(2);
    expect(tlb.stats().entries).toEqual({ linear: 1, combined: 0, guestPhysical: 1 });
  });

  it("INVEPT type 1 drops the EP4TA's combined and guest-physical mappings; type 2 all of them", () => {
    const tlb = new Tlb();
    put(tlb, 1, 0, 0, 0x1000); // linear: stays
    put(tlb, 1, 0, 5, 0x1000);
    put(tlb, 2, 3, 5, 0x2000, D | G);
    put(tlb, 1, 0, 6, 0x1000);
    tlb.insertGuestPhysical(5, 0x1000, 0, K4, 0, 7, D);
    tlb.insertGuestPhysical(6, 0x1000, 0, K4, 0, 7, D);
    expect(tlb.invept(INVEPT_TYPE.SINGLE_CONTEXT, 5)).toBe(3);
    expect(tlb.stats().entries).toEqual({ linear: 1, combined: 1, guestPhysical: 1 });
    expect(tlb.invept(INVEPT_TYPE.ALL_CONTEXTS)).toBe(2);
    expect(tlb.stats().entries).toEqual({ linear: 1, combined: 0, guestPhysical: 0 });
    expect(() => tlb.invept(INVEPT_TYPE.SINGLE_CONTEXT, 0)).toThrow(RangeError);
  });

  it("MOV to CR0 drops everything of the VPID only when it clears PG", () => {
    const tlb = new Tlb();
    put(tlb, 0, 1, 0, 0x1000);
    put(tlb, 0, 2, 4, 0x2000, D | G);
    put(tlb, 1, 0, 0, 0x1000);
    const on = CR0.PG | CR0.PE | CR0.WP;
    expect(tlb.movToCr0(0, on, on & ~CR0.WP)).toBe(0); // WP change: nothing required
    expect(tlb.movToCr0(0, CR0.PE, on)).toBe(0); // PG 0 → 1
    expect(tlb.movToCr0(0, on, CR0.PE | CR0.WP)).toBe(2); // PG 1 → 0
    expect(tlb.size).toBe(1);
    expect(tlb.stats().invalidations.movCr0).toEqual({ operations: 3, entries: 2 });
  });

  it("MOV to CR4 changing PGE, or PCIDE 1 → 0, drops everything of the VPID", () => {
    const tlb = new Tlb();
    const fill = () => {
      put(tlb, 0, 1, 0, 0x1000);
      put(tlb, 0, 2, 4, 0x2000, D | G);
      put(tlb, 1, 0, 0, 0x1000);
    };
    fill();
    expect(tlb.movToCr4(0, 1, CR4_PAE, CR4_PAE | CR4_PGE)).toBe(2);
    fill();
    expect(tlb.movToCr4(0, 1, CR4_PAE | CR4_PGE, CR4_PAE)).toBe(2);
    fill();
    expect(tlb.movToCr4(0, 1, CR4_PAE | CR4_PCIDE, CR4_PAE | CR4_PCIDE)).toBe(0);
    expect(tlb.movToCr4(0, 0, CR4_PAE, CR4_PAE | CR4_PCIDE)).toBe(0); // 0 → 1: nothing
    expect(tlb.movToCr4(0, 1, CR4_PAE | CR4_PCIDE, CR4_PAE)).toBe(2);
    expect(hits(tlb, 1, 0, 0, 0x1000)).toBe(true);
  });

  it("MOV to CR4 changing PAE, or SMEP 0 → 1, drops the current PCID's entries and globals", () => {
    const tlb = new Tlb();
    const fill = () => {
      put(tlb, 0, 1, 0, 0x1000);
      put(tlb, 0, 2, 0, 0x1000);
      put(tlb, 0, 2, 4, 0x2000, D | G);
    };
    fill();
    expect(tlb.movToCr4(0, 1, CR4_PAE, CR4_PAE | CR4_SMEP)).toBe(2);
    expect(hits(tlb, 0, 2, 0, 0x1000)).toBe(true);
    fill();
    expect(tlb.movToCr4(0, 1, CR4_PAE | CR4_SMEP, CR4_PAE)).toBe(0); // SMEP 1 → 0
    expect(tlb.movToCr4(0, 1, CR4_PAE, CR4_PAE | CR4_SMAP | CR4_PSE)).toBe(0); // not in the list
    expect(tlb.movToCr4(0, 2, CR4_PAE, 0)).toBe(2);
    expect(hits(tlb, 0, 1, 0, 0x1000)).toBe(true);
  });

  it("VM entries and exits drop VPID 0000H's linear and combined mappings when VPIDs are off", () => {
    const tlb = new Tlb();
    put(tlb, 0, 0, 0, 0x1000, D | G);
    put(tlb, 0, 3, 2, 0x1000);
    put(tlb, 1, 0, 2, 0x1000);
    tlb.insertGuestPhysical(2, 0x1000, 0, K4, 0, 7, D);
    expect(tlb.vmTransition(true)).toBe(0);
    expect(tlb.vmTransition(false)).toBe(2);
    expect(tlb.stats().entries).toEqual({ linear: 0, combined: 1, guestPhysical: 1 });
    expect(tlb.stats().invalidations.vmTransition).toEqual({ operations: 2, entries: 2 });
  });

  it("a page fault drops the faulting page's entries usable in the current context", () => {
    const tlb = new Tlb();
    put(tlb, 0, 1, 0, 0x5000);
    put(tlb, 0, 2, 0, 0x5000, D | G);
    put(tlb, 0, 3, 0, 0x5000);
    put(tlb, 0, 1, 0, 0x6000);
    expect(tlb.pageFault(0, 1, 0x5008, 0)).toBe(2);
    expect(hits(tlb, 0, 3, 0, 0x5000)).toBe(true);
    expect(hits(tlb, 0, 1, 0, 0x6000)).toBe(true);
  });

  it("an EPT violation drops the guest-physical mapping and the combined mapping of the address", () => {
    const tlb = new Tlb();
    tlb.insertGuestPhysical(5, 0x20_0000, 0, M2, 0, 7, D);
    tlb.insertGuestPhysical(6, 0x20_0000, 0, M2, 0, 7, D);
    put(tlb, 1, 2, 5, 0x7000);
    put(tlb, 1, 2, 6, 0x7000);
    put(tlb, 1, 3, 5, 0x7000);
    expect(tlb.eptViolation(5, 0x20_1000, 0)).toBe(1);
    expect(tlb.lookupGuestPhysical(6, 0x20_1000, 0, R)).not.toBe(TLB_MISS);
    tlb.insertGuestPhysical(5, 0x20_0000, 0, M2, 0, 7, D);
    expect(tlb.eptViolationForLinear(1, 2, 5, 0x7000, 0, 0x20_1000, 0)).toBe(2);
    expect(hits(tlb, 1, 2, 6, 0x7000)).toBe(true);
    expect(hits(tlb, 1, 3, 5, 0x7000)).toBe(true);
    expect(tlb.stats().invalidations.eptViolation).toEqual({ operations: 2, entries: 3 });
  });

  it("flushAll drops everything and counts it; reset also zeroes the counters", () => {
    const tlb = new Tlb();
    put(tlb, 0, 0, 0, 0x1000);
    tlb.insertGuestPhysical(1, 0x1000, 0, K4, 0, 7, D);
    hits(tlb, 0, 0, 0, 0x1000);
    expect(tlb.flushAll()).toBe(2);
    expect(tlb.size).toBe(0);
    expect(hits(tlb, 0, 0, 0, 0x1000)).toBe(false);
    expect(tlb.stats().invalidations.reset).toEqual({ operations: 1, entries: 2 });
    put(tlb, 0, 0, 0, 0x1000);
    tlb.clearStats();
    expect(tlb.stats().inserts.linear).toBe(0);
    expect(tlb.size).toBe(1);
    tlb.reset();
    expect(tlb.size).toBe(0);
    const s = tlb.stats();
    expect(s.hits).toEqual({ linear: 0, combined: 0, guestPhysical: 0 });
    expect(s.invalidations.reset.operations).toBe(0);
    expect(JSON.parse(JSON.stringify(s))).toEqual(s); // plain data
  });

  it("evictAll drops every kind of entry on the processor's own account, counted apart", () => {
    const tlb = new Tlb();
    put(tlb, 5, 3, 0, 0x1000);
    put(tlb, 5, 3, 9, 0x2000);
    tlb.insertGuestPhysical(9, 0x3000, 0, K4, 0, 7, D);
    expect(tlb.evictAll()).toBe(3);
    expect(tlb.size).toBe(0);
    expect(hits(tlb, 5, 3, 0, 0x1000)).toBe(false);
    expect(tlb.evictAll()).toBe(0);
    const s = tlb.stats().invalidations;
    expect(s.eviction).toEqual({ operations: 2, entries: 3 });
    expect(s.reset.operations).toBe(0);
  });
});

// ------------------------------------------------------------------------------------------------
// Model-based property tests: the TLB against an unbounded list of entries with the same rules,
// written from the SDM text with BigInt addresses.

interface RefEntry {
  gp: boolean;
  vpid: number;
  pcid: number | null;
  global: boolean;
  tag: number;
  size: number;
  page: bigint;
  frame: number;
  access: number;
  pkey: number;
  dirty: boolean;
}

const SHIFT: Record<number, bigint> = { [K4]: 12n, [M2]: 21n, [M4]: 22n, [G1]: 30n };
const addr = (lo: number, hi: number) => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
const covers = (e: RefEntry, lo: number, hi: number) => addr(lo, hi) >> SHIFT[e.size]! === e.page;

class Reference {
  entries: RefEntry[] = [];

  private drop(pred: (e: RefEntry) => boolean) {
    this.entries = this.entries.filter((e) => !pred(e));
  }

  insert(e: RefEntry) {
    this.drop(
      (o) =>
        o.gp === e.gp &&
        o.vpid === e.vpid &&
        o.pcid === e.pcid &&
        o.global === e.global &&
        o.tag === e.tag &&
        o.size === e.size &&
        o.page === e.page,
    );
    this.entries.push(e);
  }

  usable(vpid: number, pcid: number, tag: number, lo: number, hi: number, write: boolean) {
    return this.entries.filter(
      (e) =>
        !e.gp &&
        e.vpid === vpid &&
        e.tag === tag &&
        (e.global || e.pcid === pcid) &&
        covers(e, lo, hi) &&
        (!write || e.dirty),
    );
  }

  usableGp(tag: number, lo: number, hi: number, write: boolean) {
    return this.entries.filter((e) => e.gp && e.tag === tag && covers(e, lo, hi) && (!write || e.dirty));
  }

  /** Linear/combined entries of a VPID (any EP4TA): the scope of non-VMX invalidations. */
  private lin(vpid: number, pred: (e: RefEntry) => boolean) {
    this.drop((e) => !e.gp && e.vpid === vpid && pred(e));
  }

  movToCr3(vpid: number, pcide: boolean, pcid: number, noFlush: boolean) {
    if (pcide && noFlush) return;
    const p = pcide ? pcid : 0;
    this.lin(vpid, (e) => !e.global && e.pcid === p);
  }
  invlpg(vpid: number, pcid: number, lo: number, hi: number) {
    this.lin(vpid, (e) => covers(e, lo, hi) && (e.global || e.pcid === pcid));
  }
  invpcid(type: number, vpid: number, pcid: number, lo: number, hi: number) {
    if (type === 0) this.lin(vpid, (e) => !e.global && e.pcid === pcid && covers(e, lo, hi));
    if (type === 1) this.lin(vpid, (e) => !e.global && e.pcid === pcid);
    if (type === 2) this.lin(vpid, () => true);
    if (type === 3) this.lin(vpid, (e) => !e.global);
  }
  invvpid(type: number, vpid: number, lo: number, hi: number) {
    if (type === 0) this.lin(vpid, (e) => covers(e, lo, hi));
    if (type === 1) this.lin(vpid, () => true);
    if (type === 2) this.drop((e) => !e.gp && e.vpid !== 0);
    if (type === 3) this.lin(vpid, (e) => !e.global);
  }
  invept(type: number, tag: number) {
    this.drop((e) => e.tag !== 0 && (type === 2 || e.tag === tag));
  }
  movToCr0(vpid: number, oldPg: boolean, newPg: boolean) {
    if (oldPg && !newPg) this.lin(vpid, () => true);
  }
  movToCr4(vpid: number, pcid: number, oldCr4: number, newCr4: number) {
    const was = (bit: number) => (oldCr4 & bit) !== 0;
    const is = (bit: number) => (newCr4 & bit) !== 0;
    if (was(CR4_PGE) !== is(CR4_PGE) || (was(CR4_PCIDE) && !is(CR4_PCIDE))) this.lin(vpid, () => true);
    else if (was(CR4_PAE) !== is(CR4_PAE) || (!was(CR4_SMEP) && is(CR4_SMEP)))
      this.lin(vpid, (e) => e.global || e.pcid === pcid);
  }
  vmTransition(vpidEnabled: boolean) {
    if (!vpidEnabled) this.lin(0, () => true);
  }
  pageFault(vpid: number, pcid: number, lo: number, hi: number) {
    this.lin(vpid, (e) => covers(e, lo, hi) && (e.global || e.pcid === pcid));
  }
  eptViolation(tag: number, gLo: number, gHi: number) {
    this.drop((e) => e.gp && e.tag === tag && covers(e, gLo, gHi));
  }
  eptViolationForLinear(
    vpid: number,
    pcid: number,
    tag: number,
    lo: number,
    hi: number,
    gLo: number,
    gHi: number,
  ) {
    this.eptViolation(tag, gLo, gHi);
    this.lin(vpid, (e) => e.tag === tag && covers(e, lo, hi) && (e.global || e.pcid === pcid));
  }
}

// Small pools so that tags, pages and page sizes collide often.
const LOWS = [0, 0x1000, 0x1_f000, 0x20_0000, 0x20_3000, 0x40_0000, 0x4000_0000, 0x4020_1000, 0xffff_f000];
const HIS = [0, 0x1ff_ffff, 0xffff_ffff];
const arbLo = fc
  .constantFrom(...LOWS)
  .chain((b) => fc.integer({ min: 0, max: 0xfff }).map((o) => (b + o) >>> 0));
const arbHi = fc.constantFrom(...HIS);
const arbVpid = fc.constantFrom(0, 1, 2);
const arbPcid = fc.constantFrom(0, 1, 2);
const arbTag = fc.constantFrom(0, 0, 1, 2);
const arbGpTag = fc.constantFrom(1, 2);
const cr4Bits = [CR4_PAE, CR4_PGE, CR4_PCIDE, CR4_SMEP, CR4_SMAP, CR4_PSE];
const arbCr4 = fc.subarray(cr4Bits).map((bits) => bits.reduce((a, b) => a | b, 0));

const arbOp = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("insert" as const),
      vpid: arbVpid,
      pcid: arbPcid,
      tag: arbTag,
      lo: arbLo,
      hi: arbHi,
      size: fc.constantFrom(K4, K4, M2, M4, G1),
      pa: fc.integer({ min: 0, max: 2 ** 40 }),
      access: fc.integer({ min: 0, max: 7 }),
      pkey: fc.integer({ min: 0, max: 15 }),
      global: fc.boolean(),
      dirty: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("insertGp" as const),
      tag: arbGpTag,
      lo: arbLo,
      hi: arbHi,
      size: fc.constantFrom(K4, M2, G1),
      pa: fc.integer({ min: 0, max: 2 ** 40 }),
      access: fc.integer({ min: 0, max: 15 }),
      dirty: fc.boolean(),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("lookup" as const),
      vpid: arbVpid,
      pcid: arbPcid,
      tag: arbTag,
      lo: arbLo,
      hi: arbHi,
      write: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("lookupGp" as const),
      tag: arbGpTag,
      lo: arbLo,
      hi: arbHi,
      write: fc.boolean(),
    }),
  },
  fc.record({
    op: fc.constant("movToCr3" as const),
    vpid: arbVpid,
    pcide: fc.boolean(),
    pcid: arbPcid,
    noFlush: fc.boolean(),
  }),
  fc.record({ op: fc.constant("invlpg" as const), vpid: arbVpid, pcid: arbPcid, lo: arbLo, hi: arbHi }),
  fc.record({
    op: fc.constant("invpcid" as const),
    type: fc.integer({ min: 0, max: 3 }),
    vpid: arbVpid,
    pcid: arbPcid,
    lo: arbLo,
    hi: arbHi,
  }),
  fc.record({
    op: fc.constant("invvpid" as const),
    type: fc.integer({ min: 0, max: 3 }),
    vpid: arbVpid,
    lo: arbLo,
    hi: arbHi,
  }),
  fc.record({ op: fc.constant("invept" as const), type: fc.constantFrom(1, 2), tag: arbGpTag }),
  fc.record({
    op: fc.constant("movToCr0" as const),
    vpid: arbVpid,
    oldPg: fc.boolean(),
    newPg: fc.boolean(),
  }),
  fc.record({
    op: fc.constant("movToCr4" as const),
    vpid: arbVpid,
    pcid: arbPcid,
    oldCr4: arbCr4,
    newCr4: arbCr4,
  }),
  fc.record({ op: fc.constant("vmTransition" as const), vpidEnabled: fc.boolean() }),
  fc.record({ op: fc.constant("pageFault" as const), vpid: arbVpid, pcid: arbPcid, lo: arbLo, hi: arbHi }),
  fc.record({ op: fc.constant("eptViolation" as const), tag: arbGpTag, lo: arbLo, hi: arbHi }),
  fc.record({
    op: fc.constant("eptViolationForLinear" as const),
    vpid: arbVpid,
    pcid: arbPcid,
    tag: arbGpTag,
    lo: arbLo,
    hi: arbHi,
    gLo: arbLo,
    gHi: arbHi,
  }),
);
type Op = typeof arbOp extends fc.Arbitrary<infer T> ? T : never;

/** What an entry says, minus how it is stored, for comparing the TLB with the reference. */
function describeTlb(e: TlbEntry): string {
  return JSON.stringify([
    e.mapping === TLB_MAPPING.GUEST_PHYSICAL,
    e.mapping === TLB_MAPPING.GUEST_PHYSICAL ? 0 : e.vpid,
    e.pcid,
    e.global,
    e.eptTag,
    e.pageSize,
    e.pageNumber,
    e.frame,
    e.pageAccess,
    e.pkey,
    e.dirty,
  ]);
}
function describeRef(e: RefEntry): string {
  return JSON.stringify([
    e.gp,
    e.vpid,
    e.pcid,
    e.global,
    e.tag,
    e.size,
    Number(e.page),
    e.frame,
    e.access,
    e.pkey,
    e.dirty,
  ]);
}

/** Applies one operation to both; returns the lookup results (TLB description, usable reference set). */
function apply(tlb: Tlb, ref: Reference, o: Op): { hit: string | null; usable: string[] } | null {
  switch (o.op) {
    case "insert": {
      const flags = (o.global ? G : 0) | (o.dirty ? D : 0);
      tlb.insert(o.vpid, o.pcid, o.tag, o.lo, o.hi, o.size, o.pa, o.access, o.pkey, flags);
      ref.insert({
        gp: false,
        vpid: o.vpid,
        pcid: o.global ? null : o.pcid,
        global: o.global,
        tag: o.tag,
        size: o.size,
        page: addr(o.lo, o.hi) >> SHIFT[o.size]!,
        frame: o.pa - (o.pa % o.size),
        access: o.access,
        pkey: o.pkey,
        dirty: o.dirty,
      });
      return null;
    }
    case "insertGp":
      tlb.insertGuestPhysical(o.tag, o.lo, o.hi, o.size, o.pa, o.access, o.dirty ? D : 0);
      ref.insert({
        gp: true,
        vpid: 0,
        pcid: null,
        global: false,
        tag: o.tag,
        size: o.size,
        page: addr(o.lo, o.hi) >> SHIFT[o.size]!,
        frame: o.pa - (o.pa % o.size),
        access: o.access,
        pkey: 0,
        dirty: o.dirty,
      });
      return null;
    case "lookup":
    case "lookupGp": {
      const access = o.write ? W : R;
      const i =
        o.op === "lookup"
          ? tlb.lookup(o.vpid, o.pcid, o.tag, o.lo, o.hi, access)
          : tlb.lookupGuestPhysical(o.tag, o.lo, o.hi, access);
      const usable =
        o.op === "lookup"
          ? ref.usable(o.vpid, o.pcid, o.tag, o.lo, o.hi, o.write)
          : ref.usableGp(o.tag, o.lo, o.hi, o.write);
      let hit: string | null = null;
      if (i !== TLB_MISS) {
        const size = tlb.pageSize(i);
        hit = JSON.stringify([
          size,
          tlb.frameAddress(i),
          tlb.pageAccess(i),
          tlb.protectionKey(i),
          tlb.isGlobal(i),
          tlb.isDirty(i),
        ]);
        expect(tlb.physicalAddress(i, o.lo)).toBe(tlb.frameAddress(i) + (o.lo % size));
      }
      return {
        hit,
        usable: usable.map((e) => JSON.stringify([e.size, e.frame, e.access, e.pkey, e.global, e.dirty])),
      };
    }
    case "movToCr3":
      tlb.movToCr3(o.vpid, o.pcide, 0x7000 | o.pcid, o.noFlush ? 0x8000_0000 : 0);
      ref.movToCr3(o.vpid, o.pcide, o.pcid, o.noFlush);
      return null;
    case "invlpg":
      tlb.invlpg(o.vpid, o.pcid, o.lo, o.hi);
      ref.invlpg(o.vpid, o.pcid, o.lo, o.hi);
      return null;
    case "invpcid":
      tlb.invpcid(o.type, o.vpid, o.pcid, o.lo, o.hi);
      ref.invpcid(o.type, o.vpid, o.pcid, o.lo, o.hi);
      return null;
    case "invvpid":
      tlb.invvpid(o.type, o.vpid, o.lo, o.hi);
      ref.invvpid(o.type, o.vpid, o.lo, o.hi);
      return null;
    case "invept":
      tlb.invept(o.type, o.tag);
      ref.invept(o.type, o.tag);
      return null;
    case "movToCr0": {
      const base = CR0.PE | CR0.WP;
      tlb.movToCr0(o.vpid, base | (o.oldPg ? CR0.PG : 0), base | (o.newPg ? CR0.PG : 0));
      ref.movToCr0(o.vpid, o.oldPg, o.newPg);
      return null;
    }
    case "movToCr4":
      tlb.movToCr4(o.vpid, o.pcid, o.oldCr4, o.newCr4);
      ref.movToCr4(o.vpid, o.pcid, o.oldCr4, o.newCr4);
      return null;
    case "vmTransition":
      tlb.vmTransition(o.vpidEnabled);
      ref.vmTransition(o.vpidEnabled);
      return null;
    case "pageFault":
      tlb.pageFault(o.vpid, o.pcid, o.lo, o.hi);
      ref.pageFault(o.vpid, o.pcid, o.lo, o.hi);
      return null;
    case "eptViolation":
      tlb.eptViolation(o.tag, o.lo, o.hi);
      ref.eptViolation(o.tag, o.lo, o.hi);
      return null;
    case "eptViolationForLinear":
      tlb.eptViolationForLinear(o.vpid, o.pcid, o.tag, o.lo, o.hi, o.gLo, o.gHi);
      ref.eptViolationForLinear(o.vpid, o.pcid, o.tag, o.lo, o.hi, o.gLo, o.gHi);
      return null;
  }
}

describe("Tlb against an unbounded reference (fast-check)", () => {
  it("a small TLB only ever holds and hits entries the reference holds", () => {
    fc.assert(
      fc.property(
        fc.constantFrom({ sets: 1, ways: 1 }, { sets: 2, ways: 2 }, { sets: 4, ways: 3 }),
        fc.array(arbOp, { minLength: 20, maxLength: 120, size: "max" }),
        (geometry, ops) => {
          const tlb = new Tlb({ ...geometry, guestPhysicalSets: 2, guestPhysicalWays: 1 });
          const ref = new Reference();
          for (const o of ops) {
            const r = apply(tlb, ref, o);
            if (r !== null && r.hit !== null) expect(r.usable).toContain(r.hit);
            const held = new Set(ref.entries.map(describeRef));
            for (const e of tlb.entries()) expect(held.has(describeTlb(e))).toBe(true);
            expect(tlb.stats().entries.linear + tlb.stats().entries.combined).toBeLessThanOrEqual(
              geometry.sets * geometry.ways,
            );
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("without evictions the TLB holds exactly the reference's entries and hits exactly when it can", () => {
    fc.assert(
      fc.property(fc.array(arbOp, { minLength: 20, maxLength: 150, size: "max" }), (ops) => {
        // Fully associative and larger than any sequence: nothing is ever evicted.
        const tlb = new Tlb({ sets: 1, ways: 256 });
        const ref = new Reference();
        for (const o of ops) {
          const r = apply(tlb, ref, o);
          if (r !== null) {
            if (r.hit === null) expect(r.usable).toEqual([]);
            else expect(r.usable).toContain(r.hit);
          }
          expect(tlb.entries().map(describeTlb).sort()).toEqual(ref.entries.map(describeRef).sort());
        }
        expect(tlb.stats().evictions).toEqual({ linear: 0, combined: 0, guestPhysical: 0 });
      }),
      { numRuns: 300 },
    );
  });
});
