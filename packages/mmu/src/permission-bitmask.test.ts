import {
  ACCESS,
  accessOf,
  accessRightsFault,
  CR0,
  CR4,
  createPagingContext,
  EFER,
  MODERN_CPU,
  PFERR,
  RFLAGS,
} from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EXT_ROLE } from "./extended-role";
import { ACC, PAGE_ROLE } from "./page-role";
import {
  ACC_BYTE_MASK,
  PERMISSIONS_SIZE,
  permissionFault,
  pkruLoopRuns,
  updatePermissionBitmask,
  updatePkruBitmask,
} from "./permission-bitmask";

interface Cr {
  readonly wp: boolean;
  readonly smep: boolean;
  readonly smap: boolean;
  readonly nx: boolean;
  readonly pke: boolean;
}

/** A 4-level CPU role as kvm: kvm_calc_cpu_role builds it for these register bits. */
function role(cr: Cr): { base: number; ext: number } {
  let base = 4 | (ACC.ALL << PAGE_ROLE.ACCESS_SHIFT);
  if (cr.wp) base |= PAGE_ROLE.CR0_WP;
  if (cr.nx) base |= PAGE_ROLE.EFER_NX;
  if (cr.smep && !cr.wp) base |= PAGE_ROLE.SMEP_ANDNOT_WP;
  if (cr.smap && !cr.wp) base |= PAGE_ROLE.SMAP_ANDNOT_WP;
  let ext = EXT_ROLE.VALID | EXT_ROLE.EFER_LMA;
  if (cr.smep) ext |= EXT_ROLE.CR4_SMEP;
  if (cr.smap) ext |= EXT_ROLE.CR4_SMAP;
  if (cr.pke) ext |= EXT_ROLE.CR4_PKE;
  return { base: base >>> 0, ext };
}

function table(cr: Cr, ept = false): string {
  const out = new Uint8Array(PERMISSIONS_SIZE);
  const r = role(cr);
  updatePermissionBitmask(out, r.base, r.ext, ept);
  return Array.from(out, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

const OFF: Cr = { wp: false, smep: false, smap: false, nx: false, pke: false };

describe("update_permission_bitmask", () => {
  it("reproduces the reference byte tables of kvm-mmu.md §5.4", () => {
    expect(table({ ...OFF, wp: true, nx: true })).toBe("00 33 0f 3f 00 33 0f 3f 55 77 5f 7f 55 77 5f 7f");
    expect(table({ ...OFF, nx: true })).toBe("00 00 0f 3f 00 00 0f 3f 55 55 5f 7f 55 55 5f 7f");
    expect(table({ ...OFF, wp: true, smep: true, smap: true, nx: true })).toBe(
      "f0 f3 0f 3f 00 33 0f 3f f5 f7 5f 7f f5 f7 5f 7f",
    );
    expect(table({ ...OFF, smep: true, smap: true, nx: true })).toBe(
      "f0 f0 0f 3f 00 00 0f 3f f5 f5 5f 7f f5 f5 5f 7f",
    );
    expect(table({ ...OFF, wp: true })).toBe("00 33 0f 3f 00 33 0f 3f 00 33 0f 3f 00 33 0f 3f");
    const ept = "00 33 0f 3f 00 33 0f 3f 55 77 5f 7f 55 77 5f 7f";
    for (let bits = 0; bits < 32; bits++) {
      const cr: Cr = {
        wp: (bits & 1) !== 0,
        smep: (bits & 2) !== 0,
        smap: (bits & 4) !== 0,
        nx: (bits & 8) !== 0,
        pke: (bits & 16) !== 0,
      };
      expect(table(cr, true)).toBe(ept);
    }
  });

  it("EPT tables follow plain W/U(=read)/F against w/u(=readable)/x", () => {
    const out = new Uint8Array(PERMISSIONS_SIZE);
    updatePermissionBitmask(out, 0, EXT_ROLE.VALID, true);
    for (let byte = 0; byte < PERMISSIONS_SIZE; byte++) {
      const pfec = byte << 1;
      for (let acc = 0; acc < 8; acc++) {
        const expected =
          ((pfec & PFERR.WRITE) !== 0 && (acc & ACC.WRITE) === 0) ||
          ((pfec & PFERR.USER) !== 0 && (acc & ACC.USER) === 0) ||
          ((pfec & PFERR.FETCH) !== 0 && (acc & ACC.EXEC) === 0);
        expect(((out[byte]! >>> acc) & 1) === 1).toBe(expected);
      }
    }
  });

  it("byte masks are the ACC values holding each right", () => {
    for (let acc = 0; acc < 8; acc++) {
      expect((ACC_BYTE_MASK.EXEC >>> acc) & 1).toBe(acc & ACC.EXEC ? 1 : 0);
      expect((ACC_BYTE_MASK.WRITE >>> acc) & 1).toBe(acc & ACC.WRITE ? 1 : 0);
      expect((ACC_BYTE_MASK.USER >>> acc) & 1).toBe(acc & ACC.USER ? 1 : 0);
    }
  });

  it("reads only ext.cr4_smep/cr4_smap and base.cr0_wp/efer_nx", () => {
    const a = new Uint8Array(PERMISSIONS_SIZE);
    const b = new Uint8Array(PERMISSIONS_SIZE);
    const used = PAGE_ROLE.CR0_WP | PAGE_ROLE.EFER_NX;
    const usedExt = EXT_ROLE.CR4_SMEP | EXT_ROLE.CR4_SMAP;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xff }), (base, ext) => {
        updatePermissionBitmask(a, base, ext, false);
        updatePermissionBitmask(b, base & used, ext & usedExt, false);
        expect(Array.from(a)).toEqual(Array.from(b));
      }),
    );
  });

  it("rejects a table shorter than 16 bytes", () => {
    expect(() => updatePermissionBitmask(new Uint8Array(15), 0, 0, false)).toThrow(RangeError);
  });
});

describe("update_pkru_bitmask", () => {
  it("gives 0x0000dd00 with CR0.WP=1 and 0x0000d500 with CR0.WP=0 (kvm-mmu.md §5.5)", () => {
    const on = role({ ...OFF, wp: true, pke: true });
    expect(updatePkruBitmask(on.base, on.ext)).toBe(0x0000dd00);
    const off = role({ ...OFF, pke: true });
    expect(updatePkruBitmask(off.base, off.ext)).toBe(0x0000d500);
  });

  it("is 0 without looping when ext.cr4_pke is clear", () => {
    const r = role({ ...OFF, wp: true, smep: true, smap: true, nx: true });
    expect(pkruLoopRuns(r.ext)).toBe(false);
    expect(updatePkruBitmask(r.base, r.ext)).toBe(0);
    expect(pkruLoopRuns(r.ext | EXT_ROLE.CR4_PKE)).toBe(true);
  });

  it("matches the closed form of §5.5 field by field", () => {
    for (const wp of [false, true]) {
      const r = role({ ...OFF, wp, pke: true });
      const mask = updatePkruBitmask(r.base, r.ext);
      for (let p = 0; p < 32; p += 2) {
        const fetch = (p & PFERR.FETCH) !== 0;
        const userPage = (p & PFERR.RSVD) !== 0;
        const ad = !fetch && userPage;
        const wd = ad && (p & PFERR.WRITE) !== 0 && ((p & PFERR.USER) !== 0 || wp);
        expect((mask >>> p) & 3).toBe((ad ? 1 : 0) | (wd ? 2 : 0));
      }
    }
  });
});

/** Every legal access: read/write/fetch × user, explicit supervisor, implicit supervisor (not fetch). */
const ACCESSES: readonly number[] = [
  accessOf("read", 3),
  accessOf("write", 3),
  accessOf("fetch", 3),
  accessOf("read", 0),
  accessOf("write", 0),
  accessOf("fetch", 0),
  accessOf("read", 3, true),
  accessOf("write", 3, true),
];

function archContext(cr: Cr, ac: boolean, pkru: number) {
  return createPagingContext(
    {
      cr0: CR0.PG | CR0.PE | (cr.wp ? CR0.WP : 0),
      cr3: 0,
      cr4: CR4.PAE | (cr.smep ? CR4.SMEP : 0) | (cr.smap ? CR4.SMAP : 0) | (cr.pke ? CR4.PKE : 0),
      efer: EFER.LME | EFER.LMA | (cr.nx ? EFER.NXE : 0),
      rflags: RFLAGS.FIXED1 | (ac ? RFLAGS.AC : 0),
      pkru,
    },
    MODERN_CPU,
  );
}

describe("permission_fault agrees with the x86-arch access-rights check", () => {
  it("over SMEP/SMAP/WP/NX/PKE × AC × 16 keys × 4 AD/WD values × 8 ACC × every legal access", () => {
    const permissions = new Uint8Array(PERMISSIONS_SIZE);
    let compared = 0;
    let nxQuirk = 0;
    const mismatches: string[] = [];
    for (let bits = 0; bits < 64; bits++) {
      const cr: Cr = {
        wp: (bits & 1) !== 0,
        smep: (bits & 2) !== 0,
        smap: (bits & 4) !== 0,
        nx: (bits & 8) !== 0,
        pke: (bits & 16) !== 0,
      };
      const ac = (bits & 32) !== 0;
      const rflags = RFLAGS.FIXED1 | (ac ? RFLAGS.AC : 0);
      const r = role(cr);
      updatePermissionBitmask(permissions, r.base, r.ext, false);
      const pkruMask = updatePkruBitmask(r.base, r.ext);
      for (let pkey = 0; pkey < 16; pkey++) {
        for (let rights = 0; rights < 4; rights++) {
          // The other keys get a varying filler so that a wrong shift would show.
          const filler = (0xa5c396e1 ^ Math.imul(pkey + 1, 0x9e3779b9)) >>> 0;
          const pkru = ((filler & ~(3 << (pkey * 2))) | (rights << (pkey * 2))) >>> 0;
          const ctx = archContext(cr, ac, pkru);
          for (let acc = 0; acc < 8; acc++) {
            for (const access of ACCESSES) {
              const kvm = permissionFault(permissions, pkruMask, acc, pkey, access, rflags, pkru);
              const fetch = (access & ACCESS.FETCH) !== 0;
              if (!cr.nx && (acc & ACC.EXEC) === 0 && fetch) {
                // With EFER.NX=0 KVM ignores ACC_X (an XD bit is a reserved-bit fault earlier in
                // the walk, so the walk never produces such an ACC); x86-arch honours it. KVM then
                // decides as for the executable page.
                const asExecutable = accessRightsFault(ctx, acc | ACC.EXEC, pkey, access);
                if (kvm !== asExecutable)
                  mismatches.push(`nx quirk ${bits}/${pkey}/${rights}/${acc}/${access}`);
                nxQuirk++;
                continue;
              }
              const arch = accessRightsFault(ctx, acc, pkey, access);
              if (kvm !== arch) {
                mismatches.push(
                  `cr=${JSON.stringify(cr)} ac=${ac} pkey=${pkey} rights=${rights} acc=${acc} access=${access}: kvm=${kvm} arch=${arch}`,
                );
              }
              compared++;
            }
          }
        }
      }
    }
    expect(mismatches.slice(0, 5)).toEqual([]);
    expect(compared + nxQuirk).toBe(64 * 16 * 4 * 8 * ACCESSES.length);
    expect(nxQuirk).toBe(32 * 16 * 4 * 4 * 2);
  });

  it("for arbitrary PKRU words and keys", () => {
    const permissions = new Uint8Array(PERMISSIONS_SIZE);
    fc.assert(
      fc.property(
        fc.record({
          wp: fc.boolean(),
          smep: fc.boolean(),
          smap: fc.boolean(),
          nx: fc.constant(true),
          pke: fc.boolean(),
        }),
        fc.boolean(),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 15 }),
        fc.integer({ min: 0, max: 7 }),
        fc.constantFrom(...ACCESSES),
        (cr, ac, pkru, pkey, acc, access) => {
          const r = role(cr);
          updatePermissionBitmask(permissions, r.base, r.ext, false);
          const rflags = ac ? RFLAGS.AC : 0;
          const kvm = permissionFault(
            permissions,
            updatePkruBitmask(r.base, r.ext),
            acc,
            pkey,
            access,
            rflags,
            pkru,
          );
          expect(kvm).toBe(accessRightsFault(archContext(cr, ac, pkru), acc, pkey, access));
        },
      ),
    );
  });
});

describe("permission_fault details", () => {
  const permissions = new Uint8Array(PERMISSIONS_SIZE);
  const smapRole = role({ ...OFF, wp: true, smap: true, nx: true });
  updatePermissionBitmask(permissions, smapRole.base, smapRole.ext, false);
  const userPage = ACC.USER | ACC.WRITE | ACC.EXEC;

  it("lets RFLAGS.AC lift SMAP for explicit supervisor accesses only", () => {
    const explicitRead = accessOf("read", 0);
    const implicitRead = accessOf("read", 3, true);
    expect(permissionFault(permissions, 0, userPage, 0, explicitRead, 0, 0)).toBe(PFERR.PRESENT);
    expect(permissionFault(permissions, 0, userPage, 0, explicitRead, RFLAGS.AC, 0)).toBe(0);
    expect(permissionFault(permissions, 0, userPage, 0, implicitRead, RFLAGS.AC, 0)).toBe(PFERR.PRESENT);
    expect(permissionFault(permissions, 0, userPage, 0, implicitRead, 0, 0)).toBe(PFERR.PRESENT);
  });

  it("ignores a present bit in the access and reports P|PK for a key fault on a permission fault", () => {
    const pkeRole = role({ ...OFF, wp: true, smap: true, nx: true, pke: true });
    const pkruMask = updatePkruBitmask(pkeRole.base, pkeRole.ext);
    const supervisorWrite = accessOf("write", 0);
    // Key 1 access-disabled; a supervisor write to a user page also violates SMAP.
    const pkru = 1 << 2;
    expect(permissionFault(permissions, pkruMask, userPage, 1, supervisorWrite, 0, pkru)).toBe(
      PFERR.PRESENT | PFERR.PK,
    );
    expect(
      permissionFault(permissions, pkruMask, userPage, 1, supervisorWrite | PFERR.PRESENT, 0, pkru),
    ).toBe(PFERR.PRESENT | PFERR.PK);
    // A supervisor page ignores PKRU: no fault at all for a write with WP=1 to a writable page.
    expect(permissionFault(permissions, pkruMask, ACC.WRITE | ACC.EXEC, 1, supervisorWrite, 0, pkru)).toBe(0);
    // A user page, user read, key 1 AD: PK only.
    expect(permissionFault(permissions, pkruMask, userPage, 1, accessOf("read", 3), 0, pkru)).toBe(
      PFERR.PRESENT | PFERR.PK,
    );
  });
});
