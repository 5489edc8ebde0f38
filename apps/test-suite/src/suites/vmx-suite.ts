import {
  ACCESS_TYPE,
  EPT_VPID_CAP_HI,
  EPT_VPID_CAP_LO,
  VM_INSTRUCTION_ERROR as ERR,
  FIELD_WIDTH,
  type Msr64,
  SECONDARY_EXEC_CTLS,
  VMCS_FIELDS,
  VMX_BASIC_HI,
  VMX_MISC,
  VMX_OUTCOME,
  VMX_RESULT,
  vmcsFieldWidth,
} from "@nestvisor/vmx";
import { CR0, CR4, FEATURE_CONTROL, RFLAGS } from "@nestvisor/x86-arch";
import type { CaseGroup, Suite } from "../suite";
import { loadBaseline } from "./vmcs12-baseline";
import { expectFlags, expectOutcome, first, type VmxCase, vmxCase, vmxGroup } from "./vmx-case";
import { enc, L1, type VmxWorld } from "./vmx-world";

const OK = VMX_RESULT.SUCCEED;
const INVALID = VMX_RESULT.FAIL_INVALID;
const FIELD_VM_INSTRUCTION_ERROR = enc("VM_INSTRUCTION_ERROR");
/** Bit MAXPHYADDR (46) of a physical address, in the high word. */
const BIT_MAXPHY_HI = 1 << (46 - 32);

function errorField(w: VmxWorld): number {
  return w.vmcs12.read(FIELD_VM_INSTRUCTION_ERROR);
}

function expectError(w: VmxWorld, error: number, what: string): string | null {
  const got = errorField(w);
  return got === error ? null : `${what}: VM-instruction error ${got}, expected ${error}`;
}

/** VMREAD of ~0 so that the error field holds 12 (kvm-unit-tests' pre-seeding, vmx-tests.md §0). */
function preseed12(w: VmxWorld): string | null {
  return first(
    () => expectOutcome(w.vmread(0xffffffff, 0xffffffff), ERR.UNSUPPORTED_VMCS_COMPONENT, "VMREAD of ~0"),
    () => expectError(w, 12, "after VMREAD of ~0"),
  );
}

// ---------------------------------------------------------------------------------------------
// §1: VMXON

/** CR0/CR4 bits whose illegal value kvm-unit-tests does not try (test_vmxon_bad_cr). */
const SKIPPED_CR0 = CR0.PE | CR0.PG;
const SKIPPED_CR4 = CR4.PAE | CR4.SMAP | CR4.SMEP | CR4.CET;

/** The value of bit `bit` (0..63) that FIXED0/FIXED1 force, or -1 when the bit is flexible. */
function forcedValue(fixed0: Msr64, fixed1: Msr64, bit: number): number {
  const word = bit < 32 ? "lo" : "hi";
  const mask = 2 ** (bit % 32);
  if ((fixed0[word] & mask) !== 0) return 1;
  if ((fixed1[word] & mask) === 0) return 0;
  return -1;
}

function crBitCases(cr: 0 | 4): VmxCase[] {
  const cases: VmxCase[] = [];
  for (let bit = 0; bit < 64; bit++) {
    const skipped = bit < 32 && ((cr === 0 ? SKIPPED_CR0 : SKIPPED_CR4) & (2 ** bit)) !== 0;
    if (skipped) continue;
    cases.push(
      vmxCase(`VMXON with CR${cr} bit ${bit} at its illegal (or flipped flexible) value`, (w) => {
        const caps = w.emulator.capabilities;
        const forced =
          cr === 0
            ? forcedValue(caps.cr0Fixed0, caps.cr0Fixed1, bit)
            : forcedValue(caps.cr4Fixed0, caps.cr4Fixed1, bit);
        const lo = cr === 0 ? "cr0Lo" : "cr4Lo";
        const hi = cr === 0 ? "cr0Hi" : "cr4Hi";
        const mask = 2 ** (bit % 32);
        const word = bit < 32 ? lo : hi;
        // Illegal value of a forced bit; a flexible bit is flipped (vmx-tests.md 1.6, 1.7).
        if (forced === 1) w.ctx[word] = (w.ctx[word] & ~mask) >>> 0;
        else if (forced === 0) w.ctx[word] = (w.ctx[word] | mask) >>> 0;
        else w.ctx[word] = (w.ctx[word] ^ mask) >>> 0;
        const want = forced === -1 ? OK : cr === 4 && bit === 13 ? VMX_OUTCOME.UD : VMX_OUTCOME.GP;
        return expectOutcome(
          w.vmxon(L1.VMXON),
          want,
          forced === -1 ? "flexible bit flipped" : "illegal value",
        );
      }),
    );
  }
  return cases;
}

function vmxonCases(): VmxCase[] {
  return [
    vmxCase("1.1 IA32_FEATURE_CONTROL = 0: VMXON → #GP", (w) => {
      w.ctx.featureControl = 0;
      return expectOutcome(w.vmxon(L1.VMXON), VMX_OUTCOME.GP);
    }),
    vmxCase("1.2 FEATURE_CONTROL VMX-outside-SMX without lock: VMXON → #GP", (w) => {
      w.ctx.featureControl = FEATURE_CONTROL.VMXON_OUTSIDE_SMX;
      return expectOutcome(w.vmxon(L1.VMXON), VMX_OUTCOME.GP);
    }),
    vmxCase("1.3 FEATURE_CONTROL lock + VMX-outside-SMX: VMXON succeeds", (w) => {
      w.ctx.featureControl = FEATURE_CONTROL.LOCK | FEATURE_CONTROL.VMXON_OUTSIDE_SMX;
      return expectOutcome(w.vmxon(L1.VMXON), OK);
    }),
    vmxCase("1.8 VMXON region not 4-KiB aligned → VMfailInvalid", (w) =>
      expectOutcome(w.vmxon(L1.VMXON + 1), INVALID),
    ),
    vmxCase("1.9 VMXON pointer with bit MAXPHYADDR set → VMfailInvalid", (w) =>
      expectOutcome(w.vmxon(L1.VMXON, BIT_MAXPHY_HI), INVALID),
    ),
    vmxCase("1.10 VMXON region with a wrong revision (0xba9da9) → VMfailInvalid", (w) => {
      w.memory.write32(L1.VMXON, 0xba9da9);
      return expectOutcome(w.vmxon(L1.VMXON), INVALID);
    }),
    vmxCase("1.11 VMXON with the right revision succeeds and clears the status flags", (w) =>
      expectFlags(w, () => w.vmxon(L1.VMXON), 0, "VMXON"),
    ),
    vmxCase("VMXON with CR4.VMXE clear → #UD", (w) => {
      w.ctx.cr4Lo = (w.ctx.cr4Lo & ~CR4.VMXE) >>> 0;
      return expectOutcome(w.vmxon(L1.VMXON), VMX_OUTCOME.UD);
    }),
    vmxCase("VMXON at CPL 3 → #GP", (w) => {
      w.ctx.cpl = 3;
      return expectOutcome(w.vmxon(L1.VMXON), VMX_OUTCOME.GP);
    }),
    vmxCase("VMXON in VMX operation without a current VMCS → VMfailInvalid", (w) =>
      first(
        () => expectOutcome(w.vmxon(L1.VMXON), OK),
        () => expectOutcome(w.vmxon(L1.VMXON), INVALID),
      ),
    ),
    vmxCase("VMXON in VMX operation with a current VMCS → VMfailValid(15)", (w) => {
      w.enterVmxWithCurrent();
      return first(
        () => expectOutcome(w.vmxon(L1.VMXON), ERR.VMXON_IN_VMX_ROOT),
        () => expectError(w, 15, "VMXON in VMX root"),
      );
    }),
    vmxCase("VMXOFF, then VMXON again succeeds", (w) =>
      first(
        () => expectOutcome(w.vmxon(L1.VMXON), OK),
        () => expectOutcome(w.vmxoff(), OK),
        () => expectOutcome(w.vmxon(L1.VMXON), OK),
      ),
    ),
    ...[
      "VMXOFF",
      "VMCLEAR",
      "VMPTRLD",
      "VMPTRST",
      "VMREAD",
      "VMWRITE",
      "VMLAUNCH",
      "VMRESUME",
      "INVEPT",
      "INVVPID",
    ].map((name) =>
      vmxCase(`${name} outside VMX operation → #UD (2.10 for INVVPID)`, (w) => {
        const run: Record<string, () => number> = {
          VMXOFF: () => w.vmxoff(),
          VMCLEAR: () => w.vmclear(L1.VMCS[0]),
          VMPTRLD: () => w.vmptrld(L1.VMCS[0]),
          VMPTRST: () => w.vmptrst(),
          VMREAD: () => w.vmread(enc("GUEST_RIP")),
          VMWRITE: () => w.vmwrite(enc("GUEST_RIP"), 0),
          VMLAUNCH: () => w.vmlaunch(),
          VMRESUME: () => w.vmresume(),
          INVEPT: () => w.invept(2, 0),
          INVVPID: () => w.invvpid(2, 0, 1, 0),
        };
        return expectOutcome(run[name]!(), VMX_OUTCOME.UD);
      }),
    ),
    vmxCase("INVVPID after VMXOFF → #UD (2.10)", (w) => {
      w.enterVmxWithCurrent();
      return first(
        () => expectOutcome(w.vmxoff(), OK),
        () => expectOutcome(w.invvpid(2, 0, 1, 0), VMX_OUTCOME.UD),
      );
    }),
  ];
}

// ---------------------------------------------------------------------------------------------
// §1: VMPTRLD, VMCLEAR, VMPTRST

function pointerCases(): VmxCase[] {
  return [
    vmxCase("1.12 VMPTRLD of an unaligned address → VMfailValid(9)", (w) => {
      w.enterVmxWithCurrent();
      return expectOutcome(w.vmptrld(L1.VMCS[1] + 8), ERR.VMPTRLD_INVALID_ADDRESS);
    }),
    vmxCase("1.12 without a current VMCS the same failure is VMfailInvalid", (w) => {
      w.vmxon(L1.VMXON);
      return expectOutcome(w.vmptrld(L1.VMCS[1] + 8), INVALID);
    }),
    vmxCase("1.13 VMPTRLD with bit MAXPHYADDR set → VMfailValid(9)", (w) => {
      w.enterVmxWithCurrent();
      return expectOutcome(w.vmptrld(L1.VMCS[1], BIT_MAXPHY_HI), ERR.VMPTRLD_INVALID_ADDRESS);
    }),
    vmxCase("1.14 VMPTRLD of the VMXON region → VMfailValid(10)", (w) => {
      w.enterVmxWithCurrent();
      return first(
        () => expectOutcome(w.vmptrld(L1.VMXON), ERR.VMPTRLD_VMXON_POINTER),
        () => expectError(w, 10, "VMPTRLD of the VMXON region"),
      );
    }),
    vmxCase("1.15 VMPTRLD of a valid VMCS succeeds (status flags cleared)", (w) => {
      w.enterVmxWithCurrent();
      return expectFlags(w, () => w.vmptrld(L1.VMCS[1]), 0, "VMPTRLD");
    }),
    vmxCase("VMPTRLD of a region with a wrong revision → VMfailValid(11)", (w) => {
      w.enterVmxWithCurrent();
      w.memory.write32(L1.VMCS[1], 0x1234);
      return expectOutcome(w.vmptrld(L1.VMCS[1]), ERR.VMPTRLD_BAD_REVISION_ID);
    }),
    vmxCase("VMPTRLD of a region beyond L1's memory → VMfailValid(11)", (w) => {
      w.enterVmxWithCurrent();
      return expectOutcome(w.vmptrld(L1.MEMORY_SIZE + 0x10000), ERR.VMPTRLD_BAD_REVISION_ID);
    }),
    vmxCase("VMPTRLD of a shadow VMCS (revision bit 31) succeeds when VMCS shadowing is offered", (w) => {
      w.enterVmxWithCurrent();
      const offered =
        (w.emulator.capabilities.procbasedCtls2.hi & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_SHADOW_VMCS) !== 0;
      return expectOutcome(w.vmptrld(L1.SHADOW_VMCS), offered ? OK : ERR.VMPTRLD_BAD_REVISION_ID);
    }),
    vmxCase("1.16 VMCLEAR of an unaligned address → VMfailValid(2)", (w) => {
      w.enterVmxWithCurrent();
      return expectOutcome(w.vmclear(L1.VMCS[1] + 1), ERR.VMCLEAR_INVALID_ADDRESS);
    }),
    vmxCase("1.16 VMCLEAR with bit MAXPHYADDR set → VMfailValid(2)", (w) => {
      w.enterVmxWithCurrent();
      return expectOutcome(w.vmclear(L1.VMCS[1], BIT_MAXPHY_HI), ERR.VMCLEAR_INVALID_ADDRESS);
    }),
    vmxCase("1.17 VMCLEAR of the VMXON region → VMfailValid(3)", (w) => {
      w.enterVmxWithCurrent();
      return expectOutcome(w.vmclear(L1.VMXON), ERR.VMCLEAR_VMXON_POINTER);
    }),
    vmxCase("1.18 VMCLEAR of a valid VMCS succeeds and writes launch state 0 to its region", (w) => {
      w.vmxon(L1.VMXON);
      w.memory.write32(L1.VMCS[2] + 8, 1);
      return first(
        () => expectOutcome(w.vmclear(L1.VMCS[2]), OK),
        () =>
          w.memory.read32(L1.VMCS[2] + 8) === 0 ? null : "launch state in memory is not 0 after VMCLEAR",
      );
    }),
    vmxCase("1.21 VMPTRST after VMCLEAR + VMPTRLD returns the same pointer", (w) => {
      w.enterVmxWithCurrent(L1.VMCS[1]);
      return first(
        () => expectOutcome(w.vmptrst(), OK),
        () =>
          w.valueLo === L1.VMCS[1] && w.valueHi === 0 ? null : `VMPTRST stored 0x${w.valueLo.toString(16)}`,
      );
    }),
    vmxCase("VMPTRST without a current VMCS stores all ones", (w) => {
      w.vmxon(L1.VMXON);
      return first(
        () => expectOutcome(w.vmptrst(), OK),
        () =>
          w.valueLo === 0xffffffff && w.valueHi === 0xffffffff
            ? null
            : "VMPTRST did not store FFFFFFFF_FFFFFFFF",
      );
    }),
    vmxCase("VMCLEAR of the current VMCS leaves no current VMCS (VMREAD → VMfailInvalid)", (w) => {
      w.enterVmxWithCurrent();
      return first(
        () => expectOutcome(w.vmclear(L1.VMCS[0]), OK),
        () => expectOutcome(w.vmread(enc("GUEST_RIP")), INVALID),
      );
    }),
  ];
}

// ---------------------------------------------------------------------------------------------
// §1: VMREAD / VMWRITE of every field, HIGH aliases, flushing, life cycle

/** The full-access encodings vmcs12 stores, except the VM-instruction error (written by VMfail). */
function vmcs12Fields(): { encoding: number; name: string; width: number; readOnly: boolean }[] {
  const probe = new Set<number>();
  const out: { encoding: number; name: string; width: number; readOnly: boolean }[] = [];
  for (const f of VMCS_FIELDS) {
    if (f.access !== ACCESS_TYPE.FULL || probe.has(f.encoding)) continue;
    probe.add(f.encoding);
    if (f.encoding === FIELD_VM_INSTRUCTION_ERROR) continue;
    out.push({
      encoding: f.encoding,
      name: f.name,
      width: vmcsFieldWidth(f.encoding),
      readOnly: f.type === 1,
    });
  }
  return out;
}

/** The value kvm-unit-tests writes: cookie | (encoding << 8) | (0xdeadbeef << 32), truncated to the width. */
function fieldValue(encoding: number, cookie: number, width: number): { lo: number; hi: number } {
  const lo = (cookie | (encoding << 8)) >>> 0;
  switch (width) {
    case FIELD_WIDTH.U16:
      return { lo: lo & 0xffff, hi: 0 };
    case FIELD_WIDTH.U32:
      return { lo, hi: 0 };
    default:
      return { lo, hi: 0xdeadbeef };
  }
}

const AR_BYTES_KEPT = 0x1f0ff;

function isArBytes(name: string): boolean {
  return /^GUEST_[A-Z]+_AR_BYTES$/.test(name);
}

/** Whether a VMREAD gave back what was written (AR bytes may keep only bits 0x1f0ff, kvm: handle_vmwrite). */
function sameValue(name: string, got: { lo: number; hi: number }, want: { lo: number; hi: number }): boolean {
  if (got.lo === want.lo && got.hi === want.hi) return true;
  return isArBytes(name) && got.hi === 0 && got.lo === (want.lo & AR_BYTES_KEPT);
}

function writeAll(w: VmxWorld, cookie: number): string | null {
  for (const f of vmcs12Fields()) {
    if (w.vmcs12.offsetOf(f.encoding) < 0) continue;
    const v = fieldValue(f.encoding, cookie, f.width);
    const r = w.vmwrite(f.encoding, v.lo, v.hi);
    if (r !== OK) return `VMWRITE of ${f.name} failed with ${r}`;
  }
  return null;
}

function readAll(w: VmxWorld, cookie: number): string | null {
  for (const f of vmcs12Fields()) {
    if (w.vmcs12.offsetOf(f.encoding) < 0) continue;
    const want = fieldValue(f.encoding, cookie, f.width);
    const r = w.vmread(f.encoding);
    if (r !== OK) return `VMREAD of ${f.name} failed with ${r}`;
    const got = { lo: w.valueLo >>> 0, hi: w.valueHi >>> 0 };
    if (!sameValue(f.name, got, want)) {
      return `${f.name} reads 0x${got.hi.toString(16)}_${got.lo.toString(16)}, wrote 0x${want.hi.toString(16)}_${want.lo.toString(16)}${w.servedByShadow ? " (served by the shadow VMCS)" : ""}`;
    }
  }
  return null;
}

/** VMREAD of `field` succeeds with exactly (lo, hi). */
function readsAs(w: VmxWorld, field: number, lo: number, hi: number): boolean {
  if (w.vmread(field) !== OK) return false;
  const got: { lo: number; hi: number } = { lo: w.valueLo, hi: w.valueHi };
  return got.lo === lo && got.hi === hi;
}

/** Copies a VMCS region in L1 memory (kvm-unit-tests' memcpy of the 4-KiB page). */
function copyRegion(w: VmxWorld, from: number, to: number): void {
  for (let o = 0; o < 4096; o += 4) w.memory.write32(to + o, w.memory.read32(from + o));
}

function fieldCases(): VmxCase[] {
  const cases: VmxCase[] = vmcs12Fields().map((f) =>
    vmxCase(`1.22 VMWRITE/VMREAD of ${f.name} (0x${f.encoding.toString(16)})`, (w) => {
      w.enterVmxWithCurrent();
      const v = fieldValue(f.encoding, 0x42, f.width);
      if (w.vmcs12.offsetOf(f.encoding) < 0) {
        // A field this vmcs12 does not store: VMREAD and VMWRITE both fail with error 12.
        return first(
          () =>
            expectOutcome(
              w.vmread(f.encoding),
              ERR.UNSUPPORTED_VMCS_COMPONENT,
              "VMREAD of an unsupported field",
            ),
          () =>
            expectOutcome(w.vmwrite(f.encoding, v.lo, v.hi), ERR.UNSUPPORTED_VMCS_COMPONENT, "VMWRITE of it"),
        );
      }
      const r = w.vmwrite(f.encoding, v.lo, v.hi);
      const ro =
        f.readOnly && (w.emulator.capabilities.misc.lo & VMX_MISC.VMX_MISC_VMWRITE_SHADOW_RO_FIELDS) === 0;
      if (ro) return expectOutcome(r, ERR.VMWRITE_READ_ONLY_COMPONENT, "VMWRITE of a read-only field");
      if (r !== OK) return `VMWRITE failed with ${r}`;
      if (w.vmread(f.encoding) !== OK) return "VMREAD failed";
      const got = { lo: w.valueLo >>> 0, hi: w.valueHi >>> 0 };
      return sameValue(f.name, got, v)
        ? null
        : `reads 0x${got.hi.toString(16)}_${got.lo.toString(16)}, wrote 0x${v.hi.toString(16)}_${v.lo.toString(16)}`;
    }),
  );
  cases.push(
    vmxCase("1.23 IA32_VMX_VMCS_ENUM bits 9:1 = the highest index VMREAD accepts", (w) => {
      w.enterVmxWithCurrent();
      let highest = -1;
      for (let index = 511; index >= 0 && highest < 0; index--) {
        for (let type = 0; type < 4 && highest < 0; type++) {
          for (let width = 0; width < 4 && highest < 0; width++) {
            const encoding = (width << 13) | (type << 10) | (index << 1);
            if (w.vmread(encoding) === OK) highest = index;
          }
        }
      }
      const reported = (w.emulator.capabilities.vmcsEnum.lo >>> 1) & 0x1ff;
      return reported === highest ? null : `VMCS_ENUM says ${reported}, VMREAD accepts index ${highest}`;
    }),
    vmxCase("1.24 TSC_OFFSET and its HIGH alias (0x2011) read the two halves", (w) => {
      w.enterVmxWithCurrent();
      if (w.vmwrite(0x2010, 0x89abcdef, 0x01234567) !== OK) return "VMWRITE TSC_OFFSET failed";
      if (!readsAs(w, 0x2010, 0x89abcdef, 0x01234567)) return "TSC_OFFSET read back wrong";
      if (!readsAs(w, 0x2011, 0x01234567, 0)) return "TSC_OFFSET_HIGH is not the upper half";
      return null;
    }),
    vmxCase("1.25 VMWRITE of TSC_OFFSET_HIGH changes only the upper half", (w) => {
      w.enterVmxWithCurrent();
      w.vmwrite(0x2010, 0x89abcdef, 0x01234567);
      if (w.vmwrite(0x2011, 0x76543210) !== OK) return "VMWRITE TSC_OFFSET_HIGH failed";
      if (!readsAs(w, 0x2011, 0x76543210, 0)) return "TSC_OFFSET_HIGH read back wrong";
      if (!readsAs(w, 0x2010, 0x89abcdef, 0x76543210)) {
        return `TSC_OFFSET reads 0x${w.valueHi.toString(16)}_${w.valueLo.toString(16)}, expected 0x76543210_89abcdef`;
      }
      return null;
    }),
    vmxCase(
      "1.19 VMCLEAR flushes the current VMCS to memory: every field survives a copy of the region",
      (w) => {
        w.enterVmxWithCurrent(L1.VMCS[0]);
        return first(
          () => writeAll(w, 0x86),
          () => expectOutcome(w.vmclear(L1.VMCS[0]), OK, "VMCLEAR"),
          () => {
            copyRegion(w, L1.VMCS[0], L1.VMCS[1]);
            return expectOutcome(w.vmptrld(L1.VMCS[1]), OK, "VMPTRLD of the copy");
          },
          () => readAll(w, 0x86),
        );
      },
    ),
    vmxCase("1.20 VMCLEAR of a non-current, active VMCS flushes it too", (w) => {
      w.enterVmxWithCurrent(L1.VMCS[1]);
      return first(
        () => writeAll(w, 0x87),
        () => expectOutcome(w.vmptrld(L1.VMCS[0]), OK, "VMPTRLD VMCS0"),
        () => expectOutcome(w.vmclear(L1.VMCS[1]), OK, "VMCLEAR VMCS1"),
        () => {
          copyRegion(w, L1.VMCS[1], L1.VMCS[2]);
          return expectOutcome(w.vmptrld(L1.VMCS[2]), OK, "VMPTRLD of the copy");
        },
        () => readAll(w, 0x87),
      );
    }),
    vmxCase(
      "1.26 VMCS life cycle: values stay with their VMCS; VMPTRLD of the current VMCS keeps its writes",
      (w) => {
        const rip = enc("GUEST_RIP");
        const tag = (v: number) => w.vmwrite(rip, v);
        const expectTag = (v: number, what: string) =>
          w.vmread(rip) === OK && w.valueLo === v
            ? null
            : `${what}: GUEST_RIP reads 0x${w.valueLo.toString(16)}, expected ${v}`;
        w.vmxon(L1.VMXON);
        return first(
          () => expectOutcome(w.vmclear(L1.VMCS[0]), OK),
          () => expectOutcome(w.vmclear(L1.VMCS[1]), OK),
          () => expectOutcome(w.vmptrld(L1.VMCS[0]), OK),
          () => expectOutcome(tag(1), OK),
          () => expectOutcome(w.vmptrld(L1.VMCS[1]), OK),
          () => expectOutcome(tag(2), OK),
          () => expectOutcome(w.vmptrld(L1.VMCS[1]), OK, "VMPTRLD of the current VMCS"),
          () => expectTag(2, "after VMPTRLD of the current VMCS"),
          () => expectOutcome(w.vmptrld(L1.VMCS[0]), OK),
          () => expectTag(1, "back on VMCS0"),
          () => expectOutcome(w.vmclear(L1.VMCS[1]), OK, "VMCLEAR of the non-current VMCS1"),
          () => expectTag(1, "VMCS0 after VMCLEAR of VMCS1"),
          () => expectOutcome(w.vmptrld(L1.VMCS[1]), OK),
          () => expectTag(2, "VMCS1 reloaded from memory"),
        );
      },
    ),
    ...[0x91, 0x45].flatMap((pattern) =>
      (["VMREAD", "VMWRITE"] as const).map((op) =>
        vmxCase(
          `1.${op === "VMREAD" ? 27 : 28} ${op} with an unmapped memory operand: #PF, flags 0x${pattern.toString(16)} untouched`,
          (w) => {
            w.enterVmxWithCurrent();
            w.ctx.rflags = 0x2 | pattern;
            w.ctx.operandFault = VMX_OUTCOME.PF;
            const field = enc("GUEST_ES_SELECTOR");
            const outcome =
              op === "VMREAD"
                ? w.emulator.vmread(w.ctx, field, 0)
                : w.emulator.vmwrite(w.ctx, field, 0, 0, 0);
            w.ctx.operandFault = 0;
            return first(
              () => expectOutcome(outcome, VMX_OUTCOME.PF),
              () =>
                w.ctx.rflags === (0x2 | pattern) ? null : `RFLAGS 0x${w.ctx.rflags.toString(16)} changed`,
            );
          },
        ),
      ),
    ),
    vmxCase("VMREAD/VMWRITE of an unsupported encoding → VMfailValid(12)", (w) => {
      w.enterVmxWithCurrent();
      return first(
        () => expectOutcome(w.vmread(0x7ffe), ERR.UNSUPPORTED_VMCS_COMPONENT, "VMREAD 0x7ffe"),
        () => expectOutcome(w.vmwrite(0x7ffe, 0), ERR.UNSUPPORTED_VMCS_COMPONENT, "VMWRITE 0x7ffe"),
        () =>
          expectOutcome(
            w.vmread(enc("GUEST_RIP"), 1),
            ERR.UNSUPPORTED_VMCS_COMPONENT,
            "encoding with bits 63:32 set",
          ),
      );
    }),
    vmxCase("VMREAD/VMWRITE without a current VMCS → VMfailInvalid", (w) => {
      w.vmxon(L1.VMXON);
      return first(
        () => expectOutcome(w.vmread(enc("GUEST_RIP")), INVALID),
        () => expectOutcome(w.vmwrite(enc("GUEST_RIP"), 0), INVALID),
      );
    }),
  );
  return cases;
}

// ---------------------------------------------------------------------------------------------
// §0 and §1.29: result conventions and capability MSRs

function conventionCases(): VmxCase[] {
  return [
    vmxCase("VMsucceed clears CF, PF, AF, ZF, SF, OF", (w) => {
      w.vmxon(L1.VMXON);
      return expectFlags(w, () => w.vmclear(L1.VMCS[0]), 0, "VMCLEAR");
    }),
    vmxCase("VMfailInvalid leaves exactly CF", (w) => {
      w.vmxon(L1.VMXON);
      return expectFlags(w, () => w.vmptrld(L1.VMCS[0] + 1), RFLAGS.CF, "VMPTRLD unaligned, no current VMCS");
    }),
    vmxCase("VMfailValid leaves exactly ZF", (w) => {
      w.enterVmxWithCurrent();
      return expectFlags(w, () => w.vmptrld(L1.VMXON), RFLAGS.ZF, "VMPTRLD of the VMXON region");
    }),
    vmxCase("a successful instruction leaves the pre-seeded error 12", (w) => {
      w.enterVmxWithCurrent();
      return first(
        () => preseed12(w),
        () => expectOutcome(w.vmwrite(enc("GUEST_RIP"), 0x1234), OK),
        () => expectOutcome(w.vmread(enc("GUEST_RIP")), OK),
        () => expectOutcome(w.vmptrld(L1.VMCS[0]), OK),
        () => expectError(w, 12, "after successful instructions"),
      );
    }),
    vmxCase("a failing instruction overwrites the pre-seeded error", (w) => {
      w.enterVmxWithCurrent();
      return first(
        () => preseed12(w),
        () => expectOutcome(w.vmclear(L1.VMXON), ERR.VMCLEAR_VMXON_POINTER),
        () => expectError(w, 3, "after VMCLEAR of the VMXON region"),
      );
    }),
    vmxCase("1.29 capability MSRs are self-consistent", (w) => capsConsistency(w)),
  ];
}

/** kvm-unit-tests test_vmx_caps' rules, on the capabilities the model offers L1. */
function capsConsistency(w: VmxWorld): string | null {
  const caps = w.emulator.capabilities;
  const problems: string[] = [];
  const basicLo = caps.basic.lo;
  const basicHi = caps.basic.hi;
  if ((basicLo & 0x8000_0000) !== 0) problems.push("VMX_BASIC revision bit 31 set");
  const size = basicHi & VMX_BASIC_HI.VMCS_SIZE_MASK;
  if (size < 1 || size > 4096) problems.push(`VMCS size ${size}`);
  const memType = (basicHi & VMX_BASIC_HI.MEM_TYPE_MASK) >>> VMX_BASIC_HI.MEM_TYPE_SHIFT;
  if (memType !== 0 && memType !== 6) problems.push(`VMCS memory type ${memType}`);
  const misc = caps.misc.lo;
  if (((misc >>> 16) & 0x1ff) > 256) problems.push("more than 256 CR3 targets");
  if ((misc & 0x8000_7e00) !== 0) problems.push("VMX_MISC bits 31 or 14:9 set");
  const unrestricted = (caps.procbasedCtls2.hi & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_UNRESTRICTED_GUEST) !== 0;
  if (unrestricted && (misc & VMX_MISC.VMX_MISC_SAVE_EFER_LMA) === 0)
    problems.push("unrestricted guest without MISC bit 5");
  const pairs: [string, Msr64, Msr64 | null, number][] = [
    ["pin", caps.pinbasedCtls, caps.truePinbasedCtls, 0x16],
    ["proc", caps.procbasedCtls, caps.trueProcbasedCtls, 0x401e172],
    ["exit", caps.exitCtls, caps.trueExitCtls, 0x36dff],
    ["entry", caps.entryCtls, caps.trueEntryCtls, 0x11ff],
    ["proc2", caps.procbasedCtls2, null, 0],
  ];
  for (const [name, msr, trueMsr, default1] of pairs) {
    if ((msr.lo & ~msr.hi) >>> 0 !== 0) problems.push(`${name}: allowed-0 not within allowed-1`);
    if ((msr.lo & default1) >>> 0 !== default1) problems.push(`${name}: default1 bits not in allowed-0`);
    if (trueMsr !== null) {
      if (trueMsr.hi !== msr.hi) problems.push(`${name}: TRUE allowed-1 differs`);
      if ((trueMsr.lo | default1) >>> 0 !== msr.lo >>> 0)
        problems.push(`${name}: TRUE allowed-0 ∪ default1 ≠ allowed-0`);
    }
  }
  for (const [name, f0, f1] of [
    ["CR0", caps.cr0Fixed0, caps.cr0Fixed1],
    ["CR4", caps.cr4Fixed0, caps.cr4Fixed1],
  ] as const) {
    if ((f0.lo & ~f1.lo) >>> 0 !== 0 || (f0.hi & ~f1.hi) >>> 0 !== 0)
      problems.push(`${name} FIXED0 not within FIXED1`);
  }
  const vmcsEnum = caps.vmcsEnum.lo;
  if (vmcsEnum < 0x2a || (vmcsEnum & ~0x3fe) !== 0 || caps.vmcsEnum.hi !== 0)
    problems.push(`VMCS_ENUM 0x${vmcsEnum.toString(16)}`);
  return problems.length === 0 ? null : problems.join("; ");
}

// ---------------------------------------------------------------------------------------------
// §2: INVVPID and INVEPT

function invvpidCases(): VmxCase[] {
  const cases: VmxCase[] = [];
  const supported = (w: VmxWorld, type: number) =>
    type >= 0 && type <= 3 && (w.emulator.capabilities.eptVpidCap.hi & (1 << (8 + type))) !== 0;
  for (let type = -127; type <= 127; type++) {
    cases.push(
      vmxCase(`2.1 INVVPID type ${type}, VPID 0xffff`, (w) => {
        w.enterVmxWithCurrent();
        preseed12(w);
        const outcome = w.invvpid(type >>> 0, type < 0 ? 0xffffffff : 0, 0xffff, 0);
        if (supported(w, type)) {
          return first(
            () => expectOutcome(outcome, OK),
            () => expectError(w, 12, "after a successful INVVPID"),
          );
        }
        return expectOutcome(outcome, ERR.INVALID_INVEPT_INVVPID_OPERAND);
      }),
    );
  }
  for (let type = 0; type <= 3; type++) {
    for (let i = 0; i < 64; i++) {
      cases.push(
        vmxCase(`2.2 INVVPID type ${type}, VPID 1 << ${i}`, (w) => {
          w.enterVmxWithCurrent();
          if (!supported(w, type)) return null;
          const outcome = w.invvpid(type, 0, i < 32 ? 2 ** i : 0, i < 32 ? 0 : 2 ** (i - 32));
          return expectOutcome(outcome, i >= 16 ? ERR.INVALID_INVEPT_INVVPID_OPERAND : OK);
        }),
      );
    }
    cases.push(
      vmxCase(`2.3 INVVPID type ${type} with VPID 0`, (w) => {
        w.enterVmxWithCurrent();
        if (!supported(w, type)) return null;
        return expectOutcome(w.invvpid(type, 0, 0, 0), type === 2 ? OK : ERR.INVALID_INVEPT_INVVPID_OPERAND);
      }),
    );
  }
  cases.push(
    // Non-canonical for the host CPU's width whatever it is (kvm: is_noncanonical_invlpg_address uses
    // the host's, 57 bits on the default LA57 host): bits 63:47 and 63:56 both disagree.
    vmxCase("2.4 INVVPID type 0 with a non-canonical linear address → VMfailValid(28)", (w) => {
      w.enterVmxWithCurrent();
      return expectOutcome(w.invvpid(0, 0, 1, 0, 0, 0xaaaa_aaaa), ERR.INVALID_INVEPT_INVVPID_OPERAND);
    }),
    vmxCase("2.4 INVVPID type 0 with a canonical upper-half address succeeds", (w) => {
      w.enterVmxWithCurrent();
      return expectOutcome(w.invvpid(0, 0, 1, 0, 0, 0xffff_8000), OK);
    }),
    vmxCase("2.4 the linear address is ignored for types other than 0", (w) => {
      w.enterVmxWithCurrent();
      return expectOutcome(w.invvpid(1, 0, 1, 0, 0, 0x0000_8000), OK);
    }),
    vmxCase("INVVPID at CPL 3 → #GP", (w) => {
      w.enterVmxWithCurrent();
      w.ctx.cpl = 3;
      return expectOutcome(w.invvpid(2, 0, 1, 0), VMX_OUTCOME.GP);
    }),
  );
  return cases;
}

/** A valid EPTP for L1's EPT12 (WB, 4-level). */
const EPTP12 = L1.EPT_PML4 | (3 << 3) | 6;

function inveptCases(): VmxCase[] {
  const cases: VmxCase[] = [];
  for (let type = 0; type < 34; type++) {
    cases.push(
      vmxCase(`2.11/2.12 INVEPT type ${type} with a valid EPTP`, (w) => {
        w.enterVmxWithCurrent();
        const extents = (w.emulator.capabilities.eptVpidCap.lo >>> 24) & 6;
        const ok = type < 32 && (extents & (1 << type)) !== 0;
        return expectOutcome(w.invept(type, EPTP12), ok ? OK : ERR.INVALID_INVEPT_INVVPID_OPERAND);
      }),
    );
  }
  cases.push(
    vmxCase("INVEPT single-context with EPTP bits 11:7 set → VMfailValid(28)", (w) => {
      w.enterVmxWithCurrent();
      return expectOutcome(w.invept(1, EPTP12 | 0x80), ERR.INVALID_INVEPT_INVVPID_OPERAND);
    }),
    vmxCase("INVEPT single-context with a 2-level walk length → VMfailValid(28)", (w) => {
      w.enterVmxWithCurrent();
      return expectOutcome(w.invept(1, L1.EPT_PML4 | (1 << 3) | 6), ERR.INVALID_INVEPT_INVVPID_OPERAND);
    }),
    vmxCase("INVEPT all-context ignores the EPTP", (w) => {
      w.enterVmxWithCurrent();
      const extents = (w.emulator.capabilities.eptVpidCap.lo >>> 24) & 6;
      return expectOutcome(w.invept(2, 0xfff), (extents & 4) !== 0 ? OK : ERR.INVALID_INVEPT_INVVPID_OPERAND);
    }),
    vmxCase("INVEPT is offered as advertised (EPT_VPID_CAP bit 20)", (w) => {
      w.enterVmxWithCurrent();
      const offered = (w.emulator.capabilities.eptVpidCap.lo & EPT_VPID_CAP_LO.VMX_EPT_INVEPT_BIT) !== 0;
      const outcome = w.invept(2, EPTP12);
      return offered
        ? outcome === VMX_OUTCOME.UD
          ? "INVEPT raised #UD although offered"
          : null
        : expectOutcome(outcome, VMX_OUTCOME.UD);
    }),
    vmxCase("INVVPID is offered as advertised (EPT_VPID_CAP bit 32)", (w) => {
      w.enterVmxWithCurrent();
      const offered = (w.emulator.capabilities.eptVpidCap.hi & EPT_VPID_CAP_HI.VMX_VPID_INVVPID_BIT) !== 0;
      const outcome = w.invvpid(2, 0, 1, 0);
      return offered
        ? outcome === VMX_OUTCOME.UD
          ? "INVVPID raised #UD although offered"
          : null
        : expectOutcome(outcome, VMX_OUTCOME.UD);
    }),
  );
  return cases;
}

// ---------------------------------------------------------------------------------------------
// §3: VMLAUNCH / VMRESUME

const VMCALL = 18;

function launchCases(): VmxCase[] {
  return [
    vmxCase(
      "3.1 VMLAUNCH enters; after an exit VMRESUME enters; L1 sees the exit reason and L2's RIP",
      (w) => {
        loadBaseline(w);
        return first(
          () => expectOutcome(w.vmlaunch(), VMX_OUTCOME.ENTER_NON_ROOT, "VMLAUNCH"),
          () => {
            w.exitToL1(VMCALL, 0, (p) => {
              p.vmwrite(enc("GUEST_RIP"), 0x400003);
            });
            return null;
          },
          () =>
            w.read("VM_EXIT_REASON") === BigInt(VMCALL)
              ? null
              : `VM_EXIT_REASON reads ${w.read("VM_EXIT_REASON")}`,
          () =>
            w.read("GUEST_RIP") === 0x400003n
              ? null
              : `GUEST_RIP reads 0x${w.read("GUEST_RIP")?.toString(16)}`,
          () => expectOutcome(w.write("GUEST_RIP", 0x400006), OK, "VMWRITE GUEST_RIP"),
          () => expectOutcome(w.vmresume(), VMX_OUTCOME.ENTER_NON_ROOT, "VMRESUME"),
        );
      },
    ),
    vmxCase("VMLAUNCH of a launched VMCS → VMfailValid(4)", (w) => {
      loadBaseline(w);
      w.vmlaunch();
      w.exitToL1(VMCALL);
      return expectOutcome(w.vmlaunch(), ERR.VMLAUNCH_NONCLEAR_VMCS);
    }),
    vmxCase("VMRESUME of a clear VMCS → VMfailValid(5)", (w) => {
      loadBaseline(w);
      return expectOutcome(w.vmresume(), ERR.VMRESUME_NONLAUNCHED_VMCS);
    }),
    vmxCase("3.2 an entry failure leaves the VMCS clear (VMLAUNCH works again)", (w) => {
      loadBaseline(w);
      w.write("GUEST_RFLAGS", 0);
      return first(
        () => expectOutcome(w.vmlaunch(), VMX_OUTCOME.ENTER_NON_ROOT, "VMLAUNCH with invalid guest RFLAGS"),
        () => (w.lastEntry?.kind === "entry-failure" ? null : "no entry-failure exit"),
        () => expectOutcome(w.write("GUEST_RFLAGS", 2), OK),
        () => expectOutcome(w.vmresume(), ERR.VMRESUME_NONLAUNCHED_VMCS, "VMRESUME after the failure"),
        () => expectOutcome(w.vmlaunch(), VMX_OUTCOME.ENTER_NON_ROOT, "VMLAUNCH after the failure"),
      );
    }),
    vmxCase(
      "3.3 VMLAUNCH in a MOV-SS shadow with a launched VMCS → VMfailValid(26), flags exactly ZF",
      (w) => {
        loadBaseline(w);
        w.vmlaunch();
        w.exitToL1(VMCALL);
        w.ctx.movSsBlocking = true;
        const r = first(
          () => expectFlags(w, () => w.vmlaunch(), RFLAGS.ZF, "VMLAUNCH"),
          () => expectError(w, 26, "VMLAUNCH in a MOV-SS shadow"),
        );
        w.ctx.movSsBlocking = false;
        return r;
      },
    ),
    vmxCase("3.4 the same without a current VMCS → VMfailInvalid, flags exactly CF", (w) => {
      loadBaseline(w);
      w.vmclear(L1.VMCS[0]);
      w.ctx.movSsBlocking = true;
      const r = expectFlags(w, () => w.vmlaunch(), RFLAGS.CF, "VMLAUNCH");
      w.ctx.movSsBlocking = false;
      return r;
    }),
    vmxCase(
      "3.5 VMLAUNCH with virtualize-x2APIC and virtualize-APIC-accesses → VMfailValid(7), flags exactly ZF",
      (w) => {
        loadBaseline(w);
        const primary = Number(w.read("CPU_BASED_VM_EXEC_CONTROL") ?? 0n);
        w.write("CPU_BASED_VM_EXEC_CONTROL", (primary | 0x8000_0000 | 0x0020_0000) >>> 0);
        w.write("VIRTUAL_APIC_PAGE_ADDR", L1.VIRTUAL_APIC);
        w.write("APIC_ACCESS_ADDR", L1.APIC_ACCESS);
        w.write(
          "SECONDARY_VM_EXEC_CONTROL",
          SECONDARY_EXEC_CTLS.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES |
            SECONDARY_EXEC_CTLS.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE,
        );
        return first(
          () => expectFlags(w, () => w.vmlaunch(), RFLAGS.ZF, "VMLAUNCH"),
          () => expectError(w, 7, "bad APIC virtualization controls"),
        );
      },
    ),
    vmxCase("3.6 a shadow VMCS as the current VMCS makes VMLAUNCH VMfailInvalid", (w) => {
      w.enterVmxWithCurrent();
      if (w.vmptrld(L1.SHADOW_VMCS) !== OK) return null; // shadowing not offered: nothing to check
      return expectOutcome(w.vmlaunch(), INVALID);
    }),
    vmxCase("VMLAUNCH without a current VMCS → VMfailInvalid", (w) => {
      w.vmxon(L1.VMXON);
      return expectOutcome(w.vmlaunch(), INVALID);
    }),
    vmxCase("VMLAUNCH at CPL 3 → #GP", (w) => {
      loadBaseline(w);
      w.ctx.cpl = 3;
      return expectOutcome(w.vmlaunch(), VMX_OUTCOME.GP);
    }),
  ];
}

/** The `vmx` suite: kvm-unit-tests x86/vmx.c instruction-level cases (vmx-tests.md §1–3). */
export const VMX_SUITE: Suite = {
  name: "vmx",
  description: "kvm-unit-tests x86/vmx.c: VMX instructions and their error cases (vmx-tests.md §1–3)",
  groups(): CaseGroup[] {
    return [
      vmxGroup(
        "vmx/vmxon",
        "VMXON and the permission checks of every VMX instruction (§1.1–1.11, 2.10)",
        vmxonCases(),
      ),
      vmxGroup(
        "vmx/vmxon-cr-bits",
        "VMXON with each CR0/CR4 bit at an illegal or flipped value (§1.6, 1.7)",
        [...crBitCases(0), ...crBitCases(4)],
      ),
      vmxGroup("vmx/pointers", "VMPTRLD, VMCLEAR, VMPTRST (§1.12–1.21)", pointerCases()),
      vmxGroup(
        "vmx/fields",
        "VMREAD/VMWRITE of every field, HIGH aliases, flushing, life cycle (§1.19–1.28)",
        fieldCases(),
      ),
      vmxGroup(
        "vmx/conventions",
        "status flags, the pre-seeded error, capability MSRs (§0, §1.29)",
        conventionCases(),
      ),
      vmxGroup("vmx/invvpid", "INVVPID types, VPIDs and addresses (§2.1–2.4)", invvpidCases()),
      vmxGroup("vmx/invept", "INVEPT types and EPTPs (§2.11–2.12)", inveptCases()),
      vmxGroup("vmx/launch", "VMLAUNCH/VMRESUME (§3)", launchCases()),
    ];
  },
};
