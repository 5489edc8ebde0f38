import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ACCESS } from "./access";
import { AccessCaseExpectation, accessCaseExpectedPa, expectAccessCase } from "./access-case-outcome";
import {
  ACCESS_CASE_ENTRY_GPAS,
  ACCESS_CASE_LAYOUT,
  type AccessCaseCpu,
  accessCaseAccess,
  accessCaseCpu,
  buildAccessCaseEntries,
  newAccessCaseEntries,
} from "./access-case-setup";
import { ACCESS_CASE_FLAG, accessCaseAt, accessCaseSpace } from "./access-case-space";
import { DenseMemory } from "./dense-memory";
import { PFERR } from "./page-fault";
import { AD_UPDATE, type AdUpdate } from "./page-walk";
import { type ReferenceAdPolicy, type ReferenceState, referenceWalk } from "./testing/reference-walker";

const F = ACCESS_CASE_FLAG;
const L = ACCESS_CASE_LAYOUT;
const SPACE = accessCaseSpace();

function run(flags: number, access: number, policy: AdUpdate = AD_UPDATE.HARDWARE) {
  const e = newAccessCaseEntries();
  buildAccessCaseEntries(flags, e);
  const out = new AccessCaseExpectation();
  expectAccessCase(e, accessCaseCpu(flags), access, policy, out);
  return { out, e };
}

const PRESENT = F.PDE_PRESENT | F.PTE_PRESENT | F.PDE_WRITABLE | F.PDE_USER | F.PTE_USER;
const A = 0x20;
const D = 0x40;

describe("expectAccessCase (SDM 4.5–4.8)", () => {
  it("a not-present PTE faults with the access bits only; the PDE's A is set by hardware, not by KVM's policy", () => {
    const hw = run(F.PDE_PRESENT, ACCESS.READ);
    expect(hw.out).toMatchObject({ fault: true, errorCode: 0 });
    expect(hw.e[4]! & A).toBe(A);
    expect(hw.e[0]! & A).toBe(A);
    const kvm = run(F.PDE_PRESENT, ACCESS.READ, AD_UPDATE.AFTER_SUCCESS);
    expect(kvm.e[4]! & A).toBe(0);
  });

  it("a supervisor write to a read-only page faults with CR0.WP, passes without", () => {
    expect(run(PRESENT | F.CPU_CR0_WP, ACCESS.WRITE).out).toMatchObject({
      fault: true,
      errorCode: PFERR.PRESENT | PFERR.WRITE,
    });
    expect(run(PRESENT, ACCESS.WRITE).out.fault).toBe(false);
  });

  it("a reserved bit faults with RSVD; a user fetch of an XD page with I/D; SMEP stops a supervisor fetch of a user page", () => {
    expect(run(PRESENT | F.PTE_BIT51, ACCESS.USER).out.errorCode).toBe(
      PFERR.PRESENT | PFERR.RSVD | PFERR.USER,
    );
    expect(run(PRESENT | F.PTE_NX | F.CPU_EFER_NX, ACCESS.USER | ACCESS.FETCH).out.errorCode).toBe(
      PFERR.PRESENT | PFERR.USER | PFERR.FETCH,
    );
    expect(run(PRESENT | F.CPU_CR4_SMEP, ACCESS.FETCH).out.errorCode).toBe(PFERR.PRESENT | PFERR.FETCH);
    // Without SMEP and NXE a fetch does not report I/D.
    expect(run(PRESENT | F.PTE_BIT36, ACCESS.FETCH).out.errorCode).toBe(PFERR.PRESENT | PFERR.RSVD);
  });

  it("a key-1 user read with PKRU.AD faults with PK; key 2 on a non-leaf PDE is ignored", () => {
    const keyed = PRESENT | F.PKU_PKEY | F.CPU_CR4_PKE;
    expect(run(keyed | F.PKU_AD, ACCESS.USER).out.errorCode).toBe(PFERR.PRESENT | PFERR.USER | PFERR.PK);
    expect(run(keyed, ACCESS.USER).out.fault).toBe(false);
  });

  it("an allowed write sets A and D on the leaf (2-MiB or 4-KiB) and reaches the data page", () => {
    const small = run(PRESENT | F.PTE_WRITABLE, ACCESS.WRITE);
    expect(small.out.fault).toBe(false);
    expect(small.e[6]! & (A | D)).toBe(A | D);
    expect(accessCaseExpectedPa(small.e)).toBe(L.DATA + 0xabc);
    const large = run(F.PDE_PRESENT | F.PDE_WRITABLE | F.PDE_PSE, ACCESS.WRITE);
    expect(large.out.fault).toBe(false);
    expect(large.e[4]! & (A | D)).toBe(A | D);
    expect(accessCaseExpectedPa(large.e)).toBe(L.DATA + 0x12_3abc);
  });

  it("with NONE changes no entry", () => {
    const before = newAccessCaseEntries();
    buildAccessCaseEntries(PRESENT | F.PTE_WRITABLE, before);
    const { e } = run(PRESENT | F.PTE_WRITABLE, ACCESS.WRITE, AD_UPDATE.NONE);
    expect([...e]).toEqual([...before]);
  });
});

// ---------------------------------------------------------------------------------------------
// Against the SDM reference walker (testing/reference-walker.ts, BigInt, independent code).

const POLICIES: readonly [AdUpdate, ReferenceAdPolicy][] = [
  [AD_UPDATE.HARDWARE, "hardware"],
  [AD_UPDATE.AFTER_SUCCESS, "after-success"],
  [AD_UPDATE.NONE, "none"],
];

function referenceState(cpu: AccessCaseCpu): ReferenceState {
  return {
    cr0: (1n << 31n) | 1n | (cpu.wp ? 1n << 16n : 0n),
    cr3: BigInt(L.PML4),
    cr4:
      (1n << 5n) |
      (cpu.smep ? 1n << 20n : 0n) |
      (cpu.smap ? 1n << 21n : 0n) |
      (cpu.pke ? 1n << 22n : 0n) |
      (cpu.pks ? 1n << 24n : 0n),
    efer: (1n << 8n) | (1n << 10n) | (cpu.nxe ? 1n << 11n : 0n),
    rflags: 2n | (cpu.ac ? 1n << 18n : 0n),
    pkru: BigInt(cpu.pkru),
    pkrs: BigInt(cpu.pkrs),
    pdptes: [],
    maxPhysAddr: L.MAXPHYADDR,
    pse36: true,
    gbPages: true,
  };
}

describe("expectAccessCase agrees with the SDM reference walker", () => {
  const memory = new DenseMemory(L.MEMORY_BYTES);
  const entries = newAccessCaseEntries();
  const out = new AccessCaseExpectation();

  it("on random cases, with SMAP, RFLAGS.AC, PKS and implicit accesses mixed in, under every A/D policy", () => {
    const kinds = new Set<string>();
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: SPACE.total - 1 }),
        fc.record({ smap: fc.boolean(), ac: fc.boolean(), pks: fc.boolean(), pkrs: fc.nat(3) }),
        fc.boolean(),
        fc.constantFrom(...POLICIES),
        (index, extra, implicit, [policy, refPolicy]) => {
          const flags = accessCaseAt(SPACE, index);
          // PKRS: key 1 gets the random rights, key 2 (a non-leaf PDE's) is denied.
          const pkrs = (extra.pkrs << 2) | 0x30;
          const cpu: AccessCaseCpu = { ...accessCaseCpu(flags), ...extra, pkrs, key: -1 };
          let access = accessCaseAccess(flags);
          if (implicit && (access & ACCESS.FETCH) === 0) access = (access & ~ACCESS.USER) | ACCESS.IMPLICIT;
          buildAccessCaseEntries(flags, entries);
          for (let i = 0; i < 4; i++)
            memory.write64(ACCESS_CASE_ENTRY_GPAS[i]!, entries[2 * i]!, entries[2 * i + 1]!);
          expectAccessCase(entries, cpu, access, policy, out);
          const write = (access & ACCESS.WRITE) !== 0;
          const ref = referenceWalk(
            memory,
            referenceState(cpu),
            (BigInt(L.LA_HI) << 32n) | BigInt(L.LA_LO),
            {
              kind: (access & ACCESS.FETCH) !== 0 ? "fetch" : write ? "write" : "read",
              cpl: (access & ACCESS.USER) !== 0 ? 3 : 0,
              implicit: (access & ACCESS.IMPLICIT) !== 0,
            },
            refPolicy,
          );
          kinds.add(ref.ok ? "ok" : ref.fault);
          expect(out.fault).toBe(!ref.ok);
          if (ref.ok) expect(BigInt(accessCaseExpectedPa(entries))).toBe(ref.pa);
          else expect(out.errorCode).toBe(ref.errorCode);
          for (let i = 0; i < 8; i++) {
            expect(memory.read32(ACCESS_CASE_ENTRY_GPAS[i >> 1]! + 4 * (i & 1))).toBe(entries[i]);
          }
        },
      ),
      { numRuns: 3000 },
    );
    expect([...kinds].sort()).toEqual(["access-rights", "not-present", "ok", "reserved"]);
  });
});
