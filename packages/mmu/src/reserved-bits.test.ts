import {
  CR0,
  CR4,
  cpuFeatures,
  createPagingContext,
  EFER,
  EPT_MISCONFIG,
  type EptEntryRules,
  eptCapabilities,
  eptEntryMisconfiguration,
  eptReservedMasks,
  PAGING_MODE,
  type PagingContext,
  PDPTE_RESERVED_LO,
  reservedAddressMaskHigh,
} from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EXT_ROLE } from "./extended-role";
import { ACC, PAGE_ROLE } from "./page-role";
import {
  createRsvdBitsValidate,
  eptHugePageLevel,
  isReservedGpte,
  PG_LEVEL,
  type RsvdBitsValidate,
  resetEptShadowZeroBitsMask,
  resetGuestRsvdsBitsMask,
  resetRsvdsBitsMask,
  resetRsvdsBitsMaskEpt,
  resetShadowZeroBitsMask,
  resetTdpShadowZeroBitsMask,
  rsvdMaskIndex,
} from "./reserved-bits";

const u32 = fc.integer({ min: 0, max: 0xffffffff });

interface GuestMode {
  readonly name: string;
  readonly level: number;
  readonly cr4: number;
  readonly efer: number;
  readonly pagingMode: number;
}

const MODES: readonly GuestMode[] = [
  { name: "32-bit", level: 2, cr4: 0, efer: 0, pagingMode: PAGING_MODE.BIT32 },
  { name: "32-bit+PSE", level: 2, cr4: CR4.PSE, efer: 0, pagingMode: PAGING_MODE.BIT32 },
  { name: "PAE", level: 3, cr4: CR4.PAE, efer: 0, pagingMode: PAGING_MODE.PAE },
  { name: "4-level", level: 4, cr4: CR4.PAE, efer: EFER.LME | EFER.LMA, pagingMode: PAGING_MODE.LEVEL4 },
  {
    name: "5-level",
    level: 5,
    cr4: CR4.PAE | CR4.LA57,
    efer: EFER.LME | EFER.LMA,
    pagingMode: PAGING_MODE.LEVEL5,
  },
];

interface GuestCase {
  readonly mode: GuestMode;
  readonly maxPhysAddr: number;
  readonly nx: boolean;
  readonly gbpages: boolean;
  readonly kvm: RsvdBitsValidate;
  readonly arch: PagingContext;
}

function guestCase(mode: GuestMode, maxPhysAddr: number, nx: boolean, gbpages: boolean): GuestCase {
  const features = cpuFeatures({ maxPhysAddr, gbPages: gbpages });
  const efer = mode.efer | (nx ? EFER.NXE : 0);
  const arch = createPagingContext(
    { cr0: CR0.PG | CR0.PE, cr3: 0, cr4: mode.cr4, efer, pdptes: [0, 0, 0, 0] },
    features,
  );
  expect(arch.mode).toBe(mode.pagingMode);
  // The CPU role kvm: kvm_calc_cpu_role gives these registers (level, has_4_byte_gpte, efer_nx; cr4_pse).
  let base = mode.level | (ACC.ALL << PAGE_ROLE.ACCESS_SHIFT);
  if (mode.level === 2) base |= PAGE_ROLE.HAS_4_BYTE_GPTE;
  if (nx) base |= PAGE_ROLE.EFER_NX;
  let ext = EXT_ROLE.VALID;
  if ((mode.cr4 & CR4.PSE) !== 0) ext |= EXT_ROLE.CR4_PSE;
  if ((mode.efer & EFER.LMA) !== 0) ext |= EXT_ROLE.EFER_LMA;
  const kvm = createRsvdBitsValidate();
  resetGuestRsvdsBitsMask(kvm, base, ext, maxPhysAddr, gbpages, false);
  return { mode, maxPhysAddr, nx, gbpages, kvm, arch };
}

const GUEST_CASES: GuestCase[] = [];
for (const mode of MODES)
  for (const maxPhysAddr of [32, 36, 39, 40, 46, 52])
    for (const nx of [false, true])
      for (const gbpages of [false, true]) GUEST_CASES.push(guestCase(mode, maxPhysAddr, nx, gbpages));

/** Levels the walk checks with these masks (PAE PDPTEs are checked at MOV to CR3 instead). */
function walkedLevels(c: GuestCase): number[] {
  return c.mode.level === 3 ? [2, 1] : Array.from({ length: c.mode.level }, (_, i) => c.mode.level - i);
}

/** The 32-bit 4-MiB PDE: the documented KVM/SDM difference (PSE-36 assumed with 36 address bits). */
function isPse4M(c: GuestCase, level: number, lo: number): boolean {
  return c.mode.level === 2 && (c.mode.cr4 & CR4.PSE) !== 0 && level === 2 && (lo & 0x80) !== 0;
}

function archReserved(ctx: PagingContext, level: number, lo: number, hi: number): boolean {
  const i = level * 2 + ((lo >>> 7) & 1);
  return (lo & ctx.reservedLo[i]!) !== 0 || (hi & ctx.reservedHi[i]!) !== 0;
}

describe("guest reserved-bit masks agree with the x86-arch walker", () => {
  it("for every single-bit entry at every walked level, both values of bit 7, every mode", () => {
    let compared = 0;
    for (const c of GUEST_CASES) {
      const wide = c.mode.level !== 2;
      for (const level of walkedLevels(c)) {
        for (const bit7 of [0, 0x80]) {
          for (let bit = 0; bit < (wide ? 64 : 32); bit++) {
            const lo = (1 | bit7 | (bit < 32 ? 2 ** bit : 0)) >>> 0;
            const hi = bit >= 32 ? 2 ** (bit - 32) : 0;
            if (isPse4M(c, level, lo)) continue;
            const kvm = isReservedGpte(c.kvm, level, lo, hi);
            const arch = archReserved(c.arch, level, lo, hi);
            if (kvm !== arch) {
              throw new Error(
                `${c.mode.name} M=${c.maxPhysAddr} nx=${c.nx} gb=${c.gbpages} L${level} bit ${bit}`,
              );
            }
            compared++;
          }
        }
      }
    }
    expect(compared).toBeGreaterThan(10_000);
  });

  it("for random entries", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: GUEST_CASES.length - 1 }),
        fc.integer({ min: 1, max: 5 }),
        u32,
        u32,
        (ci, levelPick, lo0, hi0) => {
          const c = GUEST_CASES[ci]!;
          const levels = walkedLevels(c);
          const level = levels[levelPick % levels.length]!;
          const lo = (lo0 | 1) >>> 0;
          const hi = c.mode.level === 2 ? 0 : hi0;
          if (isPse4M(c, level, lo)) return;
          expect(isReservedGpte(c.kvm, level, lo, hi)).toBe(archReserved(c.arch, level, lo, hi));
        },
      ),
      { numRuns: 5000 },
    );
  });

  it("PAE PDPTE mask equals the one MOV to CR3 checks (x86-arch loadPdptes)", () => {
    for (const c of GUEST_CASES.filter((g) => g.mode.level === 3)) {
      const i = rsvdMaskIndex(0, 3);
      expect(c.kvm.lo[i]).toBe(PDPTE_RESERVED_LO);
      expect(c.kvm.hi[i]).toBe((reservedAddressMaskHigh(c.maxPhysAddr) | 0xfff00000) >>> 0);
    }
  });

  it("pins the 32-bit PSE difference: KVM reserves bits 21:17 whatever MAXPHYADDR", () => {
    for (const c of GUEST_CASES.filter((g) => isPse4M(g, 2, 0x81))) {
      expect(c.kvm.lo[rsvdMaskIndex(1, 2)]).toBe(0x003e0000);
      const archMask = c.arch.reservedLo[2 * 2 + 1]!;
      // SDM 4.3 Table 4-4 (PSE-36): bit 21 and bits 20:(13 + min(MAXPHYADDR, 40) - 32).
      const addrBits = Math.min(c.maxPhysAddr, 40) - 32;
      expect(archMask).toBe(((0x3fffff >>> (13 + addrBits)) << (13 + addrBits)) >>> 0);
      const agree = c.maxPhysAddr === 36;
      expect(archMask === c.kvm.lo[rsvdMaskIndex(1, 2)]).toBe(agree);
    }
    // MAXPHYADDR 46: a 4-MiB page above 64 GiB (PDE bit 17 = address bit 36) is legal, KVM says reserved.
    const c46 = GUEST_CASES.find((g) => isPse4M(g, 2, 0x81) && g.maxPhysAddr === 46)!;
    const pde = 0x00020081;
    expect(isReservedGpte(c46.kvm, 2, pde, 0)).toBe(true);
    expect(archReserved(c46.arch, 2, pde, 0)).toBe(false);
    // MAXPHYADDR 32: bit 13 (address bit 32) is reserved by the SDM, accepted by KVM.
    const c32 = GUEST_CASES.find((g) => isPse4M(g, 2, 0x81) && g.maxPhysAddr === 32)!;
    expect(isReservedGpte(c32.kvm, 2, 0x00002081, 0)).toBe(false);
    expect(archReserved(c32.arch, 2, 0x00002081, 0)).toBe(true);
  });

  it("pins the AMD difference: bit 8 of a PML4E/PML5E is reserved", () => {
    const amd = createRsvdBitsValidate();
    const intel = createRsvdBitsValidate();
    resetRsvdsBitsMask(amd, 46, 5, true, true, false, true);
    resetRsvdsBitsMask(intel, 46, 5, true, true, false, false);
    const pml4e = 0x00001107; // P, W, U, bit 8, address
    for (const level of [5, 4]) {
      expect(isReservedGpte(amd, level, pml4e, 0)).toBe(true);
      expect(isReservedGpte(intel, level, pml4e, 0)).toBe(false);
    }
    // Not in PDPTEs despite the kernel comment naming them: only PML4E/PML5E get it.
    expect(isReservedGpte(amd, 3, pml4e, 0)).toBe(false);
  });

  it("pins the 1-GiB PDPTE without GBPAGES: KVM's mask also holds 29:13, both reject bit 7", () => {
    const c = GUEST_CASES.find((g) => g.mode.level === 4 && !g.gbpages && g.maxPhysAddr === 46)!;
    expect(c.kvm.lo[rsvdMaskIndex(1, 3)]).toBe(0x3fffe080);
    expect(c.arch.reservedLo[3 * 2 + 1]).toBe(0x80);
  });

  it("writes only the entries of the new level (the others stay, unread)", () => {
    const t = createRsvdBitsValidate();
    resetRsvdsBitsMask(t, 46, 4, false, false, false, false);
    const pml4 = t.hi[rsvdMaskIndex(0, 4)];
    resetRsvdsBitsMask(t, 46, 2, false, false, true, false);
    expect(t.hi[rsvdMaskIndex(0, 4)]).toBe(pml4);
    expect(t.lo[rsvdMaskIndex(0, 2)]).toBe(0);
    expect(t.hi[rsvdMaskIndex(0, 1)]).toBe(0);
  });

  it("rejects a physical width outside [12, 64]", () => {
    expect(() => resetRsvdsBitsMask(createRsvdBitsValidate(), 11, 4, true, true, false, false)).toThrow(
      RangeError,
    );
    expect(() => resetRsvdsBitsMaskEpt(createRsvdBitsValidate(), 65, true, 3)).toThrow(RangeError);
  });
});

function eptRules(
  maxPhysAddr: number,
  executeOnly: boolean,
  pages2M: boolean,
  pages1G: boolean,
): EptEntryRules {
  const caps = eptCapabilities({ executeOnly, pages2M, pages1G });
  const { lo, hi } = eptReservedMasks(maxPhysAddr, caps);
  return { executeOnly, modeBasedExecute: false, reservedLo: lo, reservedHi: hi };
}

/** The capability sets real CPUs report: none, 2 MiB, or 2 MiB and 1 GiB. */
const PAGE_CAPS: ReadonlyArray<readonly [boolean, boolean]> = [
  [false, false],
  [true, false],
  [true, true],
];

describe("EPT reserved masks agree with x86-arch eptEntryMisconfiguration for present entries", () => {
  const cases: { kvm: RsvdBitsValidate; rules: EptEntryRules; name: string }[] = [];
  for (const maxPhysAddr of [36, 39, 46, 52])
    for (const execonly of [false, true])
      for (const [pages2M, pages1G] of PAGE_CAPS) {
        const kvm = createRsvdBitsValidate();
        resetRsvdsBitsMaskEpt(kvm, maxPhysAddr, execonly, eptHugePageLevel(pages2M, pages1G));
        cases.push({
          kvm,
          rules: eptRules(maxPhysAddr, execonly, pages2M, pages1G),
          name: `M=${maxPhysAddr} xo=${execonly} 2M=${pages2M} 1G=${pages1G}`,
        });
      }

  it("for every value of bits 10:0 × three addresses × single high bits at every level", () => {
    let compared = 0;
    for (const c of cases) {
      for (let level = 1; level <= 5; level++) {
        for (let low = 1; low < 0x800; low++) {
          if ((low & 7) === 0) continue;
          for (const address of [0, 0x40000000, 0x12345000]) {
            for (const hiBit of [-1, 4, 19, 20, 31]) {
              const hi = hiBit < 0 ? 0 : 2 ** hiBit;
              const lo = (low | address) >>> 0;
              const kvm = isReservedGpte(c.kvm, level, lo, hi);
              const arch = eptEntryMisconfiguration(c.rules, lo, hi, level) !== EPT_MISCONFIG.NONE;
              if (kvm !== arch)
                throw new Error(`${c.name} L${level} lo=${lo.toString(16)} hi=${hi.toString(16)}`);
              compared++;
            }
          }
        }
      }
    }
    expect(compared).toBe(cases.length * 5 * (0x800 - 0x100) * 3 * 5);
  });

  it("for random present entries", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: cases.length - 1 }),
        fc.integer({ min: 1, max: 5 }),
        u32,
        u32,
        (ci, level, lo0, hi) => {
          const c = cases[ci]!;
          const lo = (lo0 & 7) === 0 ? (lo0 | 1) >>> 0 : lo0;
          expect(isReservedGpte(c.kvm, level, lo, hi)).toBe(
            eptEntryMisconfiguration(c.rules, lo, hi, level) !== EPT_MISCONFIG.NONE,
          );
        },
      ),
      { numRuns: 5000 },
    );
  });

  it("bad_mt_xwr is memory type 2/3/7, XWR 010/110, and 100 without execute-only", () => {
    for (const execonly of [false, true]) {
      const t = createRsvdBitsValidate();
      resetRsvdsBitsMaskEpt(t, 46, execonly, PG_LEVEL.SIZE_1G);
      for (let b = 0; b < 64; b++) {
        const mt = b >>> 3;
        const xwr = b & 7;
        const bad = mt === 2 || mt === 3 || mt === 7 || xwr === 2 || xwr === 6 || (xwr === 4 && !execonly);
        expect(((t.badMtXwr[b >>> 5]! >>> (b & 31)) & 1) === 1).toBe(bad);
      }
    }
  });

  it("pins the 1-GiB-without-2-MiB capability set: KVM allows 2-MiB leaves", () => {
    expect(eptHugePageLevel(false, true)).toBe(PG_LEVEL.SIZE_1G);
    expect(eptHugePageLevel(true, false)).toBe(PG_LEVEL.SIZE_2M);
    expect(eptHugePageLevel(false, false)).toBe(PG_LEVEL.SIZE_4K);
    const kvm = createRsvdBitsValidate();
    resetRsvdsBitsMaskEpt(kvm, 46, true, eptHugePageLevel(false, true));
    const pde2M = 0x00200087 | (6 << 3); // RWX, WB, bit 7
    expect(isReservedGpte(kvm, 2, pde2M, 0)).toBe(false);
    expect(eptEntryMisconfiguration(eptRules(46, true, false, true), pde2M, 0, 2)).toBe(
      EPT_MISCONFIG.RESERVED_BIT,
    );
  });
});

describe("shadow-zero masks", () => {
  it("TDP on Intel uses the EPT format without execute-only (kvm: reset_tdp_shadow_zero_bits_mask)", () => {
    const tdp = createRsvdBitsValidate();
    const tdpRole =
      4 | PAGE_ROLE.DIRECT | PAGE_ROLE.CR0_WP | PAGE_ROLE.EFER_NX | (ACC.ALL << PAGE_ROLE.ACCESS_SHIFT);
    resetTdpShadowZeroBitsMask(tdp, tdpRole, 46, false, true, PG_LEVEL.SIZE_1G);
    const ept = createRsvdBitsValidate();
    resetRsvdsBitsMaskEpt(ept, 46, false, PG_LEVEL.SIZE_1G);
    expect(tdp).toEqual(ept);
    const rules = eptRules(46, false, true, true);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), u32, u32, (level, lo0, hi) => {
        const lo = (lo0 & 7) === 0 ? (lo0 | 7) >>> 0 : lo0;
        expect(isReservedGpte(tdp, level, lo, hi)).toBe(
          eptEntryMisconfiguration(rules, lo, hi, level) !== EPT_MISCONFIG.NONE,
        );
      }),
    );
  });

  it("TDP on AMD (NPT) uses the x86 format with NX on and the AMD bit-8 rule", () => {
    const npt = createRsvdBitsValidate();
    resetTdpShadowZeroBitsMask(npt, 4 | PAGE_ROLE.DIRECT, 48, true, true, PG_LEVEL.SIZE_1G);
    const pa = 0x000f0000; // bits 51:48 in the high word
    expect(npt.lo[rsvdMaskIndex(0, 4)]).toBe(0x180);
    expect(npt.hi[rsvdMaskIndex(0, 4)]).toBe(pa);
    expect(npt.lo[rsvdMaskIndex(1, 3)]).toBe(0x3fffe000);
    expect(npt.lo[rsvdMaskIndex(1, 2)]).toBe(0x001fe000);
    expect(npt.hi[rsvdMaskIndex(0, 1)]).toBe(pa); // NX on: bit 63 usable
    expect(Array.from(npt.badMtXwr)).toEqual([0, 0]);
  });

  it("shadow paging takes level and NX from the root role, never PSE, always the AMD rule", () => {
    const sz = createRsvdBitsValidate();
    // A PAE guest shadowed with a PAE root; kvm_init_shadow_mmu forces efer_nx=1.
    const rootRole = 3 | PAGE_ROLE.EFER_NX | PAGE_ROLE.CR0_WP | (ACC.ALL << PAGE_ROLE.ACCESS_SHIFT);
    resetShadowZeroBitsMask(sz, rootRole, 46, true);
    expect(sz.hi[rsvdMaskIndex(0, 1)]).toBe(0x7fffc000); // bits 62:46
    expect(sz.lo[rsvdMaskIndex(1, 2)]).toBe(0x001fe000);
    const four = createRsvdBitsValidate();
    resetShadowZeroBitsMask(four, 4, 46, false); // efer_nx=0 in the root role: bit 63 reserved
    expect(four.lo[rsvdMaskIndex(0, 4)]).toBe(0x180);
    expect(four.lo[rsvdMaskIndex(0, 3)]).toBe(0x80);
    expect(four.hi[rsvdMaskIndex(0, 1)]).toBe(0x800fc000);
  });

  it("shadow EPT uses the EPT format with L1's execute-only setting", () => {
    const a = createRsvdBitsValidate();
    const b = createRsvdBitsValidate();
    resetEptShadowZeroBitsMask(a, 46, true, PG_LEVEL.SIZE_1G);
    resetRsvdsBitsMaskEpt(b, 46, true, PG_LEVEL.SIZE_1G);
    expect(a).toEqual(b);
    expect(isReservedGpte(a, 1, 0x4 | (6 << 3), 0)).toBe(false);
    resetEptShadowZeroBitsMask(a, 46, false, PG_LEVEL.SIZE_1G);
    expect(isReservedGpte(a, 1, 0x4 | (6 << 3), 0)).toBe(true);
  });
});
