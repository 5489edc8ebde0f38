import { CR0, CR4, DenseMemory, FEATURE_CONTROL, RFLAGS, SparseMemory } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { KVM_DEFAULT_VMX_CAPABILITIES, type VmxCapabilities } from "./capability-msrs";
import { SECONDARY_EXEC_CTLS, VMX_MISC } from "./controls";
import { fieldByName } from "./field-catalog";
import { FIELD_TYPE, FIELD_WIDTH, fieldType } from "./field-encoding";
import { CountingMeter } from "./meter";
import type { NestedSyncPort } from "./nested-sync-port";
import { INVALID_GPA, NestedVmxState } from "./nested-vmx-state";
import type { Vmcs12 } from "./vmcs12";
import { VMCS12_REVISION, VMCS12_SIZE, vmcs12Layout } from "./vmcs12-layout";
import { VMX_EVENTS } from "./vmx-events";
import {
  type NestedEntryCheckError,
  VmxInstructionContext,
  VmxInstructionEmulator,
  type VmxInstructionEmulatorOptions,
} from "./vmx-instruction-emulation";
import { VMX_OUTCOME } from "./vmx-instruction-outcome";

function enc(name: string): number {
  const field = fieldByName(name);
  if (field === undefined) throw new Error(`unknown field ${name}`);
  return field.encoding;
}

const VM_INSTRUCTION_ERROR = enc("VM_INSTRUCTION_ERROR");
const VMCS_LINK_POINTER = enc("VMCS_LINK_POINTER");
const GUEST_RIP = enc("GUEST_RIP");
const GUEST_RSP = enc("GUEST_RSP");
const GUEST_CS_SELECTOR = enc("GUEST_CS_SELECTOR");
const GUEST_ES_SELECTOR = enc("GUEST_ES_SELECTOR");
const GUEST_ES_AR_BYTES = enc("GUEST_ES_AR_BYTES");
const GUEST_CS_AR_BYTES = enc("GUEST_CS_AR_BYTES");
const GUEST_TR_AR_BYTES = enc("GUEST_TR_AR_BYTES");
const EXCEPTION_BITMAP = enc("EXCEPTION_BITMAP");
const TSC_OFFSET = enc("TSC_OFFSET");
const TSC_OFFSET_HIGH = enc("TSC_OFFSET_HIGH");
const VM_EXIT_REASON = enc("VM_EXIT_REASON");
const EXIT_QUALIFICATION = enc("EXIT_QUALIFICATION");
const CR3_TARGET_VALUE0 = 0x6008;

/** Small samples of KVM's lists (the real ones belong to the shadow-VMCS module). */
const SHADOW_RW = new Set([GUEST_RIP, GUEST_RSP, enc("GUEST_RFLAGS"), enc("CPU_BASED_VM_EXEC_CONTROL")]);
const SHADOW_RO = new Set([VM_EXIT_REASON, EXIT_QUALIFICATION, GUEST_CS_AR_BYTES, enc("GUEST_SS_AR_BYTES")]);
const RARE = new Set([GUEST_ES_SELECTOR, GUEST_ES_AR_BYTES, enc("GUEST_ES_BASE"), enc("GUEST_ES_LIMIT")]);

/** A NestedSyncPort that records the calls made on it, in order. */
class RecordingSync implements NestedSyncPort {
  shadowingEnabled: boolean;
  readonly calls: string[] = [];
  /** What copyShadowToVmcs12 does to vmcs12 (stands for L1's unintercepted VMWRITEs). */
  onCopyShadow: ((vmcs12: Vmcs12) => void) | null = null;

  constructor(shadowingEnabled = true) {
    this.shadowingEnabled = shadowingEnabled;
  }

  isShadowRw(encoding: number): boolean {
    return SHADOW_RW.has(encoding);
  }
  isShadowRo(encoding: number): boolean {
    return SHADOW_RO.has(encoding);
  }
  isRareField(encoding: number): boolean {
    return RARE.has(encoding);
  }
  copyShadowToVmcs12(vmcs12: Vmcs12): void {
    this.calls.push("copyShadowToVmcs12");
    this.onCopyShadow?.(vmcs12);
  }
  syncRareFieldsIfPending(_vmcs12: Vmcs12): void {
    this.calls.push("syncRareFieldsIfPending");
  }
  currentVmcsLoaded(_vmcs12: Vmcs12): void {
    this.calls.push("currentVmcsLoaded");
    this.dirtyVmcs12 = true;
  }
  /** Like the real port: with shadowing, the shadow VMCS's fields are pulled, then shadowing is off. */
  currentVmcsReleased(vmcs12: Vmcs12): void {
    this.calls.push("currentVmcsReleased");
    if (this.shadowingEnabled) this.onCopyShadow?.(vmcs12);
  }
  disableShadowing(): void {
    this.calls.push("disableShadowing");
  }
  dirtyVmcs12 = false;
  markVmcs12Dirty(): void {
    this.dirtyVmcs12 = true;
  }
  writeThroughReadOnly(encoding: number, lo: number, hi: number): void {
    this.calls.push(
      `writeThroughReadOnly(0x${encoding.toString(16)}, 0x${lo.toString(16)}, 0x${hi.toString(16)})`,
    );
  }
}

const VMXON_REGION = 0x1000;
const VMCS_A = 0x2000;
const VMCS_B = 0x3000;
const VMCS_C = 0x4000;
const MEMORY_SIZE = 0x100000;
const ALL_ONES = 0xffffffff;

/** The six status flags SDM 31.2 defines, and the two patterns kvm-unit-tests checks. */
const STATUS = RFLAGS.CF | RFLAGS.PF | RFLAGS.AF | RFLAGS.ZF | RFLAGS.SF | RFLAGS.OF;
/** kvm-unit-tests forces CF=ZF=1 before each instruction (plus bit 1 and IF here). */
const BEFORE = 0x202 | RFLAGS.CF | RFLAGS.ZF | RFLAGS.SF | RFLAGS.PF;

interface Setup {
  readonly emu: VmxInstructionEmulator;
  readonly ctx: VmxInstructionContext;
  readonly sync: RecordingSync;
  readonly memory: DenseMemory;
  readonly state: NestedVmxState;
  readonly meter: CountingMeter;
  readonly checked: Vmcs12[];
}

/** L1 with VMXON region and three VMCS regions (revision written), not yet in VMX operation. */
function setup(
  options: Partial<VmxInstructionEmulatorOptions> & {
    entryResult?: NestedEntryCheckError;
    shadowing?: boolean;
  } = {},
): Setup {
  const memory = new DenseMemory(MEMORY_SIZE);
  for (const region of [VMXON_REGION, VMCS_A, VMCS_B, VMCS_C]) memory.write32(region, VMCS12_REVISION);
  const sync = new RecordingSync(options.shadowing ?? true);
  const meter = new CountingMeter([VMX_EVENTS]);
  const checked: Vmcs12[] = [];
  const entryResult = options.entryResult ?? 0;
  const emu = new VmxInstructionEmulator({
    memory,
    sync,
    meter,
    entryChecks: (vmcs12) => {
      checked.push(vmcs12);
      return entryResult;
    },
    ...options,
  });
  const ctx = new VmxInstructionContext();
  return { emu, ctx, sync, memory, state: emu.state, meter, checked };
}

/** `setup` plus a successful VMXON. */
function inVmx(options: Parameters<typeof setup>[0] = {}): Setup {
  const s = setup(options);
  expect(s.emu.vmxon(s.ctx, VMXON_REGION, 0)).toBe(VMX_OUTCOME.SUCCEED);
  return s;
}

/** `inVmx` plus VMCLEAR + VMPTRLD of VMCS_A (kvm-unit-tests init_vmcs/make_vmcs_current). */
function withCurrent(options: Parameters<typeof setup>[0] = {}): Setup {
  const s = inVmx(options);
  expect(s.emu.vmclear(s.ctx, VMCS_A, 0)).toBe(VMX_OUTCOME.SUCCEED);
  expect(s.emu.vmptrld(s.ctx, VMCS_A, 0)).toBe(VMX_OUTCOME.SUCCEED);
  s.sync.calls.length = 0;
  return s;
}

/** VMREAD of `~0` so that the error field holds 12 (kvm-unit-tests' pre-seeding trick). */
function preseed12(s: Setup): void {
  expect(s.emu.vmread(s.ctx, ALL_ONES, ALL_ONES)).toBe(12);
  expect(error(s)).toBe(12);
}

/** vmcs12's VM-instruction error, read without the emulator. */
function error(s: Setup): number {
  return s.state.cachedVmcs12.read(VM_INSTRUCTION_ERROR);
}

/** VMREAD returning the value as a BigInt, expecting success. */
function vmread(s: Setup, field: number): bigint {
  expect(s.emu.vmread(s.ctx, field, 0)).toBe(VMX_OUTCOME.SUCCEED);
  return (BigInt(s.emu.valueHi) << 32n) | BigInt(s.emu.valueLo);
}

function vmwrite(s: Setup, field: number, value: bigint): number {
  return s.emu.vmwrite(s.ctx, field, 0, Number(value & 0xffffffffn), Number((value >> 32n) & 0xffffffffn));
}

/** Runs one instruction with RFLAGS preset to `BEFORE` and returns RFLAGS' status flags after it. */
function flagsAfter(s: Setup, run: () => number): number {
  s.ctx.rflags = BEFORE;
  run();
  return s.ctx.rflags & STATUS;
}

describe("VMX result conventions (kvm-vmx.md §4, vmx-tests.md §0)", () => {
  it("VMsucceed clears all six status flags and keeps the others", () => {
    const s = inVmx();
    s.ctx.rflags = BEFORE;
    expect(s.emu.vmclear(s.ctx, VMCS_A, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.ctx.rflags).toBe(0x202);
  });

  it("VMfailInvalid leaves exactly CF; VMfailValid exactly ZF and records the number", () => {
    const s = inVmx();
    expect(flagsAfter(s, () => s.emu.vmptrld(s.ctx, VMCS_A + 8, 0))).toBe(RFLAGS.CF);
    expect(s.emu.vmptrld(s.ctx, VMCS_A, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(flagsAfter(s, () => s.emu.vmptrld(s.ctx, VMCS_A + 8, 0))).toBe(RFLAGS.ZF);
    expect(error(s)).toBe(9);
  });

  it("successful instructions leave a pre-seeded error number (12) unchanged", () => {
    const s = withCurrent();
    preseed12(s);
    expect(vmwrite(s, GUEST_RIP, 0x1234n)).toBe(VMX_OUTCOME.SUCCEED);
    expect(vmread(s, GUEST_RIP)).toBe(0x1234n);
    expect(s.emu.vmptrld(s.ctx, VMCS_A, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.emu.vmptrst(s.ctx)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.emu.invept(s.ctx, 2, 0, 0, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.emu.invvpid(s.ctx, 2, 0, 0, 0, 0, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(error(s)).toBe(12);
  });

  it("the error number goes to vmcs12, not to a shadow VMCS, and costs no sync call", () => {
    const s = withCurrent();
    expect(s.emu.vmwrite(s.ctx, CR3_TARGET_VALUE0, 0, 1, 0)).toBe(12);
    expect(s.state.cachedVmcs12.read(VM_INSTRUCTION_ERROR)).toBe(12);
    expect(s.sync.calls).toEqual([]);
  });

  it("faults leave RFLAGS alone and return the fault", () => {
    const s = setup();
    s.ctx.rflags = BEFORE;
    expect(s.emu.vmptrld(s.ctx, VMCS_A, 0)).toBe(VMX_OUTCOME.UD);
    expect(s.ctx.rflags).toBe(BEFORE);
  });
});

describe("permission (kvm: nested_vmx_check_permission)", () => {
  const handlers: [string, (s: Setup) => number][] = [
    ["VMXOFF", (s) => s.emu.vmxoff(s.ctx)],
    ["VMCLEAR", (s) => s.emu.vmclear(s.ctx, VMCS_A, 0)],
    ["VMPTRLD", (s) => s.emu.vmptrld(s.ctx, VMCS_A, 0)],
    ["VMPTRST", (s) => s.emu.vmptrst(s.ctx)],
    ["VMREAD", (s) => s.emu.vmread(s.ctx, GUEST_RIP, 0)],
    ["VMWRITE", (s) => s.emu.vmwrite(s.ctx, GUEST_RIP, 0, 0, 0)],
    ["VMLAUNCH", (s) => s.emu.vmlaunch(s.ctx)],
    ["VMRESUME", (s) => s.emu.vmresume(s.ctx)],
    ["INVEPT", (s) => s.emu.invept(s.ctx, 2, 0, 0, 0)],
    ["INVVPID", (s) => s.emu.invvpid(s.ctx, 2, 0, 0, 0, 0, 0)],
  ];

  it.each(handlers)("%s before VMXON raises #UD, even with a faulting operand", (_name, run) => {
    const s = setup();
    s.ctx.operandFault = VMX_OUTCOME.PF;
    expect(run(s)).toBe(VMX_OUTCOME.UD);
  });

  it.each(handlers)("%s at CPL 3 raises #GP(0)", (_name, run) => {
    const s = withCurrent();
    s.ctx.cpl = 3;
    expect(run(s)).toBe(VMX_OUTCOME.GP);
  });

  it("INVVPID after VMXOFF raises #UD (vmx-tests 2.10)", () => {
    const s = withCurrent();
    expect(s.emu.vmxoff(s.ctx)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.emu.invvpid(s.ctx, 2, 0, 1, 0, 0, 0)).toBe(VMX_OUTCOME.UD);
  });

  it("instructions other than VMREAD/VMWRITE from L2 are a caller bug (always reflected to L1)", () => {
    const s = withCurrent();
    s.state.guestMode = true;
    expect(() => s.emu.vmlaunch(s.ctx)).toThrow(/reflected to L1/);
    expect(() => s.emu.vmclear(s.ctx, VMCS_A, 0)).toThrow(/reflected to L1/);
  });
});

describe("VMXON (kvm: handle_vmxon; vmx-tests 1.1–1.11)", () => {
  it("succeeds with a valid region: VMX operation, no current VMCS, flags cleared (1.11)", () => {
    const s = setup();
    s.ctx.rflags = BEFORE;
    expect(s.emu.vmxon(s.ctx, VMXON_REGION, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.ctx.rflags & STATUS).toBe(0);
    expect(s.state.vmxon).toBe(true);
    expect(s.state.vmxonPtr).toBe(VMXON_REGION);
    expect(s.state.currentVmptr).toBe(INVALID_GPA);
  });

  it("#GP when IA32_FEATURE_CONTROL is 0 or lacks the lock bit (1.1, 1.2)", () => {
    const s = setup();
    s.ctx.featureControl = 0;
    expect(s.emu.vmxon(s.ctx, VMXON_REGION, 0)).toBe(VMX_OUTCOME.GP);
    s.ctx.featureControl = FEATURE_CONTROL.VMXON_OUTSIDE_SMX;
    expect(s.emu.vmxon(s.ctx, VMXON_REGION, 0)).toBe(VMX_OUTCOME.GP);
    s.ctx.featureControl = FEATURE_CONTROL.LOCK | FEATURE_CONTROL.VMXON_INSIDE_SMX;
    expect(s.emu.vmxon(s.ctx, VMXON_REGION, 0)).toBe(VMX_OUTCOME.GP);
    expect(s.state.vmxon).toBe(false);
  });

  it("#UD for CR4.VMXE = 0, #GP for every other CR0/CR4 bit the fixed MSRs forbid (1.6)", () => {
    const caps = KVM_DEFAULT_VMX_CAPABILITIES;
    for (let bit = 0; bit < 32; bit++) {
      const mask = 2 ** bit;
      if ((caps.cr0Fixed0.lo & mask) !== 0) {
        const s = setup();
        s.ctx.cr0Lo = (s.ctx.cr0Lo & ~mask) >>> 0;
        expect(s.emu.vmxon(s.ctx, VMXON_REGION, 0), `CR0 bit ${bit} clear`).toBe(VMX_OUTCOME.GP);
      }
      if ((caps.cr4Fixed0.lo & mask) !== 0) {
        const s = setup();
        s.ctx.cr4Lo = (s.ctx.cr4Lo & ~mask) >>> 0;
        const expected = mask === CR4.VMXE ? VMX_OUTCOME.UD : VMX_OUTCOME.GP;
        expect(s.emu.vmxon(s.ctx, VMXON_REGION, 0), `CR4 bit ${bit} clear`).toBe(expected);
      }
      if ((caps.cr4Fixed1.lo & mask) === 0) {
        const s = setup();
        s.ctx.cr4Lo = (s.ctx.cr4Lo | mask) >>> 0;
        expect(s.emu.vmxon(s.ctx, VMXON_REGION, 0), `CR4 bit ${bit} set`).toBe(VMX_OUTCOME.GP);
      }
    }
    const s = setup();
    s.ctx.cr0Hi = 1; // CR0 bit 32: reserved (FIXED1 high word is 0)
    expect(s.emu.vmxon(s.ctx, VMXON_REGION, 0)).toBe(VMX_OUTCOME.GP);
  });

  it("still succeeds with any setting of the flexible CR0/CR4 bits (1.7, property)", () => {
    const caps = KVM_DEFAULT_VMX_CAPABILITIES;
    const cr0Flexible = (caps.cr0Fixed1.lo & ~caps.cr0Fixed0.lo) >>> 0;
    const cr4Flexible = (caps.cr4Fixed1.lo & ~caps.cr4Fixed0.lo) >>> 0;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: ALL_ONES }), fc.integer({ min: 0, max: ALL_ONES }), (a, b) => {
        const s = setup();
        s.ctx.cr0Lo = (caps.cr0Fixed0.lo | (a & cr0Flexible)) >>> 0;
        s.ctx.cr4Lo = (caps.cr4Fixed0.lo | (b & cr4Flexible)) >>> 0;
        expect(s.emu.vmxon(s.ctx, VMXON_REGION, 0)).toBe(VMX_OUTCOME.SUCCEED);
      }),
      { numRuns: 100 },
    );
  });

  it("VMfailInvalid for an unaligned pointer, one beyond MAXPHYADDR, or a wrong revision (1.8–1.10)", () => {
    const s = setup({ maxPhysAddr: 46 });
    expect(flagsAfter(s, () => s.emu.vmxon(s.ctx, VMXON_REGION + 1, 0))).toBe(RFLAGS.CF);
    expect(s.emu.vmxon(s.ctx, VMXON_REGION, 2 ** (47 - 32))).toBe(VMX_OUTCOME.FAIL_INVALID);
    s.memory.write32(VMXON_REGION, 0xba9da9);
    expect(s.emu.vmxon(s.ctx, VMXON_REGION, 0)).toBe(VMX_OUTCOME.FAIL_INVALID);
    // A region outside L1's memory reads as unbacked.
    expect(s.emu.vmxon(s.ctx, MEMORY_SIZE, 0)).toBe(VMX_OUTCOME.FAIL_INVALID);
    expect(s.state.vmxon).toBe(false);
  });

  it("the shadow-VMCS bit in the VMXON region's first word is a wrong revision", () => {
    const s = setup();
    s.memory.write32(VMXON_REGION, (VMCS12_REVISION | 0x80000000) >>> 0);
    expect(s.emu.vmxon(s.ctx, VMXON_REGION, 0)).toBe(VMX_OUTCOME.FAIL_INVALID);
  });

  it("in VMX operation: VMfail(15), i.e. VMfailInvalid without a current VMCS, VMfailValid(15) with one", () => {
    const s = inVmx();
    expect(flagsAfter(s, () => s.emu.vmxon(s.ctx, VMXON_REGION, 0))).toBe(RFLAGS.CF);
    expect(s.emu.vmptrld(s.ctx, VMCS_A, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.emu.vmxon(s.ctx, VMXON_REGION, 0)).toBe(15);
    expect(error(s)).toBe(15);
  });

  it("orders its checks as KVM 6.12: VMXE #UD, CPL #GP, VMfail(15), CR #GP, FEATURE_CONTROL #GP, operand", () => {
    const s = inVmx();
    s.ctx.cr0Lo = 0; // would be #GP, but the VMfail comes first once post-VMXON
    expect(s.emu.vmxon(s.ctx, VMXON_REGION, 0)).toBe(VMX_OUTCOME.FAIL_INVALID);
    s.ctx.cpl = 3;
    expect(s.emu.vmxon(s.ctx, VMXON_REGION, 0)).toBe(VMX_OUTCOME.GP);
    s.ctx.cr4Lo = 0;
    expect(s.emu.vmxon(s.ctx, VMXON_REGION, 0)).toBe(VMX_OUTCOME.UD);

    const t = setup();
    t.ctx.featureControl = 0;
    t.ctx.cr0Lo = 0;
    t.ctx.operandFault = VMX_OUTCOME.PF;
    expect(t.emu.vmxon(t.ctx, VMXON_REGION, 0)).toBe(VMX_OUTCOME.GP);
    t.ctx.featureControl = FEATURE_CONTROL.LOCK | FEATURE_CONTROL.VMXON_OUTSIDE_SMX;
    t.ctx.cr0Lo = (CR0.PE | CR0.NE | CR0.PG) >>> 0;
    expect(t.emu.vmxon(t.ctx, VMXON_REGION + 1, 0)).toBe(VMX_OUTCOME.PF);
  });
});

describe("VMXOFF (kvm: handle_vmxoff → free_nested)", () => {
  it("leaves VMX operation, forgets both pointers, and does not write vmcs12 back", () => {
    const s = withCurrent();
    expect(vmwrite(s, GUEST_RIP, 0xabcn)).toBe(VMX_OUTCOME.SUCCEED);
    const before = s.memory.readBytes(VMCS_A, VMCS12_SIZE);
    expect(s.emu.vmxoff(s.ctx)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.state.vmxon).toBe(false);
    expect(s.state.vmxonPtr).toBe(INVALID_GPA);
    expect(s.state.currentVmptr).toBe(INVALID_GPA);
    expect(s.memory.readBytes(VMCS_A, VMCS12_SIZE)).toEqual(before);
    expect(s.sync.calls).toEqual(["disableShadowing"]);
    expect(s.meter.byName("VMCS12_IMAGE_FLUSH")).toBe(0);
  });

  it("makes no sync call without shadowing or without a current VMCS", () => {
    const s = withCurrent({ shadowing: false });
    expect(s.emu.vmxoff(s.ctx)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.sync.calls).toEqual([]);
    const t = inVmx();
    t.sync.calls.length = 0;
    expect(t.emu.vmxoff(t.ctx)).toBe(VMX_OUTCOME.SUCCEED);
    expect(t.sync.calls).toEqual([]);
  });
});

describe("VMCLEAR (kvm: handle_vmclear; vmx-tests 1.16–1.20)", () => {
  it("bad address: VMfailValid(2) with a current VMCS, VMfailInvalid without (1.16)", () => {
    const s = withCurrent({ maxPhysAddr: 46 });
    preseed12(s);
    expect(s.emu.vmclear(s.ctx, VMCS_B + 0x10, 0)).toBe(2);
    expect(s.emu.vmclear(s.ctx, VMCS_B, 2 ** (47 - 32))).toBe(2);
    expect(error(s)).toBe(2);
    const t = inVmx();
    expect(t.emu.vmclear(t.ctx, VMCS_B + 1, 0)).toBe(VMX_OUTCOME.FAIL_INVALID);
  });

  it("of the VMXON region: VMfail(3) (1.17)", () => {
    const s = withCurrent();
    expect(flagsAfter(s, () => s.emu.vmclear(s.ctx, VMXON_REGION, 0))).toBe(RFLAGS.ZF);
    expect(error(s)).toBe(3);
  });

  it("of a valid VMCS: VMsucceed, launch_state 0 in memory (1.18)", () => {
    const s = inVmx();
    s.memory.write32(VMCS_B + 8, 1);
    expect(s.emu.vmclear(s.ctx, VMCS_B, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.memory.read32(VMCS_B + 8)).toBe(0);
    expect(s.state.currentVmptr).toBe(INVALID_GPA);
  });

  it("ignores a region outside L1's memory (the launch-state write fails silently)", () => {
    const s = inVmx();
    expect(s.emu.vmclear(s.ctx, MEMORY_SIZE, 0)).toBe(VMX_OUTCOME.SUCCEED);
  });

  it("of the current VMCS releases it: write-back, then no current VMCS (1.19)", () => {
    const s = withCurrent();
    const cookie = (n: number) => 0x86n | (BigInt(n) << 8n);
    const fields = vmcs12Layout().fields.filter(
      (f) => (f.encoding & 1) === 0 && f.encoding !== VM_INSTRUCTION_ERROR,
    );
    for (const f of fields) expect(vmwrite(s, f.encoding, cookie(f.encoding))).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.emu.vmclear(s.ctx, VMCS_A, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.state.currentVmptr).toBe(INVALID_GPA);
    // The region now holds the data: copy it to a fresh page and load that.
    s.memory.writeBytes(VMCS_C, s.memory.readBytes(VMCS_A, VMCS12_SIZE));
    expect(s.emu.vmptrld(s.ctx, VMCS_C, 0)).toBe(VMX_OUTCOME.SUCCEED);
    for (const f of fields) {
      const mask =
        f.width === FIELD_WIDTH.U16 ? 0xffffn : f.width === FIELD_WIDTH.U32 ? 0xffffffffn : (1n << 64n) - 1n;
      let expected = cookie(f.encoding) & mask;
      if (f.encoding >= GUEST_ES_AR_BYTES && f.encoding <= GUEST_TR_AR_BYTES) expected &= 0x1f0ffn;
      expect(vmread(s, f.encoding), f.name).toBe(expected);
    }
    expect(s.emu.vmlaunch(s.ctx)).not.toBe(4); // launch_state was cleared
  });

  it("of a non-current VMCS only clears its launch state in memory (1.20)", () => {
    const s = withCurrent();
    expect(s.emu.vmptrld(s.ctx, VMCS_B, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(vmwrite(s, EXCEPTION_BITMAP, 0x87n)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.emu.vmptrld(s.ctx, VMCS_A, 0)).toBe(VMX_OUTCOME.SUCCEED); // VMCS_B written back here
    s.sync.calls.length = 0;
    expect(s.emu.vmclear(s.ctx, VMCS_B, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.sync.calls).toEqual([]);
    expect(s.state.currentVmptr).toBe(VMCS_A);
    s.memory.writeBytes(VMCS_C, s.memory.readBytes(VMCS_B, VMCS12_SIZE));
    expect(s.emu.vmptrld(s.ctx, VMCS_C, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(vmread(s, EXCEPTION_BITMAP)).toBe(0x87n);
  });
});

describe("VMPTRLD (kvm: handle_vmptrld; vmx-tests 1.12–1.15)", () => {
  it("bad address: VMfail(9); VMfailInvalid without a current VMCS (1.12, 1.13)", () => {
    const s = inVmx({ maxPhysAddr: 46 });
    expect(s.emu.vmptrld(s.ctx, VMCS_A + 1, 0)).toBe(VMX_OUTCOME.FAIL_INVALID);
    expect(s.emu.vmptrld(s.ctx, VMCS_A, 2 ** (47 - 32))).toBe(VMX_OUTCOME.FAIL_INVALID);
    expect(s.emu.vmptrld(s.ctx, VMCS_A, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.emu.vmptrld(s.ctx, VMCS_B + 0x800, 0)).toBe(9);
    expect(s.emu.vmptrld(s.ctx, VMCS_B, 2 ** (47 - 32))).toBe(9);
    expect(s.state.currentVmptr).toBe(VMCS_A);
  });

  it("of the VMXON region: VMfailValid(10) (1.14)", () => {
    const s = withCurrent();
    preseed12(s);
    expect(flagsAfter(s, () => s.emu.vmptrld(s.ctx, VMXON_REGION, 0))).toBe(RFLAGS.ZF);
    expect(error(s)).toBe(10);
  });

  it("of a valid VMCS: VMsucceed, current pointer set, vmcs12 dirty (1.15)", () => {
    const s = inVmx();
    expect(s.emu.vmptrld(s.ctx, VMCS_A, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.state.currentVmptr).toBe(VMCS_A);
    expect(s.sync.dirtyVmcs12).toBe(true);
    expect(s.state.cachedVmcs12.revision).toBe(VMCS12_REVISION);
  });

  it("wrong revision or unbacked region: VMfail(11), current VMCS kept", () => {
    const s = withCurrent();
    s.memory.write32(VMCS_B, 0x12345678);
    expect(s.emu.vmptrld(s.ctx, VMCS_B, 0)).toBe(11);
    expect(s.emu.vmptrld(s.ctx, MEMORY_SIZE, 0)).toBe(11);
    expect(s.state.currentVmptr).toBe(VMCS_A);
    expect(s.sync.calls).toEqual([]); // nothing released
  });

  it("shadow-VMCS bit in the header: accepted when L1 is offered VMCS shadowing, else VMfail(11)", () => {
    const shadowHeader = (VMCS12_REVISION | 0x80000000) >>> 0;
    const s = withCurrent();
    s.memory.write32(VMCS_B, shadowHeader);
    expect(s.emu.vmptrld(s.ctx, VMCS_B, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.state.cachedVmcs12.shadowVmcs).toBe(true);

    const caps: VmxCapabilities = {
      ...KVM_DEFAULT_VMX_CAPABILITIES,
      procbasedCtls2: {
        lo: 0,
        hi:
          (KVM_DEFAULT_VMX_CAPABILITIES.procbasedCtls2.hi &
            ~SECONDARY_EXEC_CTLS.SECONDARY_EXEC_SHADOW_VMCS) >>>
          0,
      },
    };
    const t = withCurrent({ capabilities: caps });
    t.memory.write32(VMCS_B, shadowHeader);
    expect(t.emu.vmptrld(t.ctx, VMCS_B, 0)).toBe(11);
  });

  it("of the current VMCS again keeps the cached vmcs12 (no reload, no sync) (1.26)", () => {
    const s = withCurrent();
    expect(vmwrite(s, GUEST_RIP, 2n)).toBe(VMX_OUTCOME.SUCCEED);
    s.sync.dirtyVmcs12 = false;
    expect(s.emu.vmptrld(s.ctx, VMCS_A, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(vmread(s, GUEST_RIP)).toBe(2n);
    expect(s.sync.calls).toEqual([]);
    expect(s.sync.dirtyVmcs12).toBe(false);
  });

  it("round trip: VMPTRLD reads the image, release writes it back, VMPTRLD reads it again", () => {
    const s = withCurrent();
    expect(vmwrite(s, GUEST_RIP, 0xffffffff_80001000n)).toBe(VMX_OUTCOME.SUCCEED);
    expect(vmwrite(s, GUEST_CS_SELECTOR, 0x10n)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.memory.read32(VMCS_A + 544)).toBe(0); // guest_rip only in the cache so far
    expect(s.emu.vmptrld(s.ctx, VMCS_B, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.memory.read32(VMCS_A + 544)).toBe(0x80001000); // kvm: guest_rip at 544
    expect(s.memory.read32(VMCS_A + 548)).toBe(0xffffffff);
    expect(vmread(s, GUEST_RIP)).toBe(0n);
    expect(s.emu.vmptrld(s.ctx, VMCS_A, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(vmread(s, GUEST_RIP)).toBe(0xffffffff_80001000n);
    expect(vmread(s, GUEST_CS_SELECTOR)).toBe(0x10n);
  });

  it("calls the sync port in KVM's order: rare sync, shadow copy, disable, write-back, then load", () => {
    const s = withCurrent();
    s.sync.onCopyShadow = (vmcs12) => {
      // L1's unintercepted VMWRITE of GUEST_RSP lives in the shadow VMCS until this copy.
      vmcs12.write(GUEST_RSP, 0x7000);
      s.sync.calls.push(`memory rsp=${s.memory.read32(VMCS_A + 536)}`);
    };
    expect(s.emu.vmptrld(s.ctx, VMCS_B, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.sync.calls).toEqual([
      "syncRareFieldsIfPending",
      "currentVmcsReleased",
      "memory rsp=0",
      "currentVmcsLoaded",
    ]);
    expect(s.memory.read32(VMCS_A + 536)).toBe(0x7000); // kvm: guest_rsp at 536, written back after the copy
  });

  it("without shadowing: the same calls (the port does no shadow work), and no shadow copy", () => {
    const s = withCurrent({ shadowing: false });
    s.sync.onCopyShadow = () => {
      throw new Error("no shadow copy without shadowing");
    };
    expect(s.emu.vmptrld(s.ctx, VMCS_B, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.sync.calls).toEqual(["syncRareFieldsIfPending", "currentVmcsReleased", "currentVmcsLoaded"]);
  });
});

describe("VMPTRST (kvm: handle_vmptrst; vmx-tests 1.21)", () => {
  it("stores the current pointer, or all ones without one", () => {
    const s = inVmx();
    expect(s.emu.vmptrst(s.ctx)).toBe(VMX_OUTCOME.SUCCEED);
    expect([s.emu.valueLo, s.emu.valueHi]).toEqual([ALL_ONES, ALL_ONES]);
    expect(s.emu.vmptrld(s.ctx, VMCS_A, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.emu.vmptrst(s.ctx)).toBe(VMX_OUTCOME.SUCCEED);
    expect([s.emu.valueLo, s.emu.valueHi]).toEqual([VMCS_A, 0]);
  });

  it("reports a destination fault after the permission check", () => {
    const s = inVmx();
    s.ctx.operandFault = VMX_OUTCOME.PF;
    s.ctx.rflags = BEFORE;
    expect(s.emu.vmptrst(s.ctx)).toBe(VMX_OUTCOME.PF);
    expect(s.ctx.rflags).toBe(BEFORE);
  });
});

describe("VMREAD / VMWRITE in L1 (kvm: handle_vmread, handle_vmwrite; vmx-tests 1.22–1.28)", () => {
  it("without a current VMCS: VMfailInvalid", () => {
    const s = inVmx();
    expect(flagsAfter(s, () => s.emu.vmread(s.ctx, GUEST_RIP, 0))).toBe(RFLAGS.CF);
    expect(flagsAfter(s, () => s.emu.vmwrite(s.ctx, GUEST_RIP, 0, 1, 0))).toBe(RFLAGS.CF);
  });

  it("an encoding vmcs12 does not store: VMfail(12) (~0, bits above 14, CR3-target values in 6.12)", () => {
    const s = withCurrent();
    for (const [lo, hi] of [
      [ALL_ONES, ALL_ONES],
      [0x8000, 0],
      [GUEST_RIP, 1], // bits 63:32 of the register are part of the encoding in 64-bit mode
      [CR3_TARGET_VALUE0, 0],
      [GUEST_RIP | 1, 0], // a _HIGH access to a natural-width field
    ] as const) {
      expect(flagsAfter(s, () => s.emu.vmread(s.ctx, lo, hi))).toBe(RFLAGS.ZF);
      expect(error(s)).toBe(12);
      s.state.cachedVmcs12.write(VM_INSTRUCTION_ERROR, 0);
      expect(s.emu.vmwrite(s.ctx, lo, hi, 5, 0)).toBe(12);
      expect(error(s)).toBe(12);
      s.state.cachedVmcs12.write(VM_INSTRUCTION_ERROR, 0);
    }
  });

  it("outside 64-bit mode the encoding register is 32 bits (its high half ignored)", () => {
    const s = withCurrent();
    s.ctx.mode64 = false;
    expect(s.emu.vmwrite(s.ctx, GUEST_RIP, 1, 0x1234, 0x5678)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.emu.vmread(s.ctx, GUEST_RIP, 1)).toBe(VMX_OUTCOME.SUCCEED);
    expect([s.emu.valueLo, s.emu.valueHi]).toEqual([0x1234, 0]);
  });

  it("the CR3-target values exist in the v5.3 vmcs12", () => {
    const s = withCurrent({ state: new NestedVmxState("v5.3") });
    expect(vmwrite(s, CR3_TARGET_VALUE0, 0x1000n)).toBe(VMX_OUTCOME.SUCCEED);
    expect(vmread(s, CR3_TARGET_VALUE0)).toBe(0x1000n);
  });

  it("writes then reads back every stored field, truncated to its width (1.22)", () => {
    const s = withCurrent();
    for (const f of vmcs12Layout().fields) {
      if ((f.encoding & 1) !== 0 || f.encoding === VM_INSTRUCTION_ERROR) continue;
      const value = 0x42n | (BigInt(f.encoding) << 8n) | (0xdeadbeefn << 32n);
      expect(vmwrite(s, f.encoding, value), f.name).toBe(VMX_OUTCOME.SUCCEED);
      const mask =
        f.width === FIELD_WIDTH.U16 ? 0xffffn : f.width === FIELD_WIDTH.U32 ? 0xffffffffn : (1n << 64n) - 1n;
      let expected = value & mask;
      if (f.encoding >= GUEST_ES_AR_BYTES && f.encoding <= GUEST_TR_AR_BYTES) expected &= 0x1f0ffn;
      expect(vmread(s, f.encoding), f.name).toBe(expected);
    }
  });

  it("exit-information fields: writable with IA32_VMX_MISC bit 29 (KVM's default), else VMfail(13)", () => {
    const s = withCurrent();
    expect(vmwrite(s, VM_EXIT_REASON, 0x1en)).toBe(VMX_OUTCOME.SUCCEED);
    expect(vmread(s, VM_EXIT_REASON)).toBe(0x1en);
    const caps: VmxCapabilities = {
      ...KVM_DEFAULT_VMX_CAPABILITIES,
      misc: {
        lo: (KVM_DEFAULT_VMX_CAPABILITIES.misc.lo & ~VMX_MISC.VMX_MISC_VMWRITE_SHADOW_RO_FIELDS) >>> 0,
        hi: 0,
      },
    };
    const t = withCurrent({ capabilities: caps });
    for (const f of vmcs12Layout().fields) {
      if (fieldType(f.encoding) !== FIELD_TYPE.EXIT_INFO) continue;
      expect(t.emu.vmwrite(t.ctx, f.encoding, 0, 1, 0), f.name).toBe(13);
    }
    expect(t.state.cachedVmcs12.read(VM_EXIT_REASON)).toBe(0);
    // 6.12 looks the field up first: an unknown exit-information encoding is 12, not 13.
    expect(t.emu.vmwrite(t.ctx, 0x4420, 0, 1, 0)).toBe(12);
  });

  it("masks the access-rights fields with 0x1f0ff (only when configured so, as since v5.3)", () => {
    const s = withCurrent();
    expect(vmwrite(s, GUEST_ES_AR_BYTES, 0xffff_ffffn)).toBe(VMX_OUTCOME.SUCCEED);
    expect(vmread(s, GUEST_ES_AR_BYTES)).toBe(0x1f0ffn);
    expect(vmwrite(s, GUEST_TR_AR_BYTES, 0x1_2345_608bn)).toBe(VMX_OUTCOME.SUCCEED);
    expect(vmread(s, GUEST_TR_AR_BYTES)).toBe(0x1608bn);
    const t = withCurrent({ maskArBytesOnVmwrite: false });
    expect(vmwrite(t, GUEST_ES_AR_BYTES, 0xfffe_ffffn)).toBe(VMX_OUTCOME.SUCCEED);
    expect(vmread(t, GUEST_ES_AR_BYTES)).toBe(0xfffe_ffffn);
  });

  it("a 64-bit field and its _HIGH alias (1.24, 1.25)", () => {
    const s = withCurrent();
    expect(vmwrite(s, TSC_OFFSET, 0x0123456789abcdefn)).toBe(VMX_OUTCOME.SUCCEED);
    expect(vmread(s, TSC_OFFSET)).toBe(0x0123456789abcdefn);
    expect(vmread(s, TSC_OFFSET_HIGH)).toBe(0x01234567n);
    expect(vmwrite(s, TSC_OFFSET_HIGH, 0x76543210n)).toBe(VMX_OUTCOME.SUCCEED);
    expect(vmread(s, TSC_OFFSET_HIGH)).toBe(0x76543210n);
    expect(vmread(s, TSC_OFFSET)).toBe(0x7654321089abcdefn);
  });

  it("outside 64-bit mode only 32 bits are written and read", () => {
    const s = withCurrent();
    expect(vmwrite(s, GUEST_RIP, 0xaaaa_bbbb_cccc_ddddn)).toBe(VMX_OUTCOME.SUCCEED);
    s.ctx.mode64 = false;
    expect(s.emu.vmread(s.ctx, GUEST_RIP, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect([s.emu.valueLo, s.emu.valueHi]).toEqual([0xcccc_dddd, 0]);
    expect(s.emu.vmwrite(s.ctx, TSC_OFFSET, 0, 0x1111, 0x2222)).toBe(VMX_OUTCOME.SUCCEED);
    s.ctx.mode64 = true;
    expect(vmread(s, TSC_OFFSET)).toBe(0x1111n);
  });

  it("a faulting memory operand: the fault, flags untouched, nothing stored (1.27, 1.28)", () => {
    const s = withCurrent();
    expect(vmwrite(s, GUEST_RIP, 7n)).toBe(VMX_OUTCOME.SUCCEED);
    for (const pattern of [0x91, 0x45]) {
      s.ctx.rflags = 0x2 | pattern;
      s.ctx.operandFault = VMX_OUTCOME.PF;
      expect(s.emu.vmread(s.ctx, GUEST_RIP, 0)).toBe(VMX_OUTCOME.PF);
      expect(s.ctx.rflags).toBe(0x2 | pattern);
      expect(s.emu.vmwrite(s.ctx, GUEST_RIP, 0, 9, 0)).toBe(VMX_OUTCOME.PF);
      expect(s.ctx.rflags).toBe(0x2 | pattern);
    }
    s.ctx.operandFault = 0;
    expect(vmread(s, GUEST_RIP)).toBe(7n);
  });

  it("VMREAD syncs the rare guest fields first, and only for them", () => {
    const s = withCurrent();
    vmread(s, GUEST_RIP);
    expect(s.sync.calls).toEqual([]);
    vmread(s, GUEST_ES_SELECTOR);
    expect(s.sync.calls).toEqual(["syncRareFieldsIfPending"]);
  });

  it("VMWRITE: shadow RW fields neither sync nor dirty; others sync first and dirty vmcs12", () => {
    const s = withCurrent();
    s.sync.dirtyVmcs12 = false;
    expect(vmwrite(s, GUEST_RIP, 1n)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.sync.calls).toEqual([]);
    expect(s.sync.dirtyVmcs12).toBe(false);
    expect(vmwrite(s, EXCEPTION_BITMAP, 2n)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.sync.calls).toEqual(["syncRareFieldsIfPending"]);
    expect(s.sync.dirtyVmcs12).toBe(true);
  });

  it("VMWRITE to a shadow RO field writes the (masked) value through to the shadow VMCS", () => {
    const s = withCurrent();
    expect(vmwrite(s, GUEST_CS_AR_BYTES, 0xffff_ffffn)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.sync.calls).toEqual(["syncRareFieldsIfPending", "writeThroughReadOnly(0x4816, 0x1f0ff, 0x0)"]);
    expect(s.sync.dirtyVmcs12).toBe(true);
    const t = withCurrent({ shadowing: false });
    t.sync.dirtyVmcs12 = false;
    expect(vmwrite(t, EXIT_QUALIFICATION, 5n)).toBe(VMX_OUTCOME.SUCCEED);
    expect(vmwrite(t, GUEST_RIP, 5n)).toBe(VMX_OUTCOME.SUCCEED);
    expect(t.sync.calls).toEqual(["syncRareFieldsIfPending"]);
    expect(t.sync.dirtyVmcs12).toBe(true);
  });

  it("VMWRITE checks, in order: current VMCS, operand, field (12), read-only (13)", () => {
    const caps: VmxCapabilities = { ...KVM_DEFAULT_VMX_CAPABILITIES, misc: { lo: 0, hi: 0 } };
    const s = inVmx({ capabilities: caps });
    s.ctx.operandFault = VMX_OUTCOME.PF;
    expect(s.emu.vmwrite(s.ctx, VM_EXIT_REASON, 0, 0, 0)).toBe(VMX_OUTCOME.FAIL_INVALID);
    expect(s.emu.vmptrld(s.ctx, VMCS_A, 0)).toBe(VMX_OUTCOME.PF);
    s.ctx.operandFault = 0;
    expect(s.emu.vmptrld(s.ctx, VMCS_A, 0)).toBe(VMX_OUTCOME.SUCCEED);
    s.ctx.operandFault = VMX_OUTCOME.PF;
    expect(s.emu.vmwrite(s.ctx, ALL_ONES, 0, 0, 0)).toBe(VMX_OUTCOME.PF);
    s.ctx.operandFault = 0;
    expect(s.emu.vmwrite(s.ctx, VM_EXIT_REASON, 0, 0, 0)).toBe(13);
  });
});

describe("VMREAD / VMWRITE from L2 under L1's VMCS shadowing (guest mode)", () => {
  function inL2(linkLo: number, linkHi: number): Setup {
    const s = withCurrent();
    s.state.cachedVmcs12.write(VMCS_LINK_POINTER, linkLo, linkHi);
    s.state.cachedShadowVmcs12.write(GUEST_RIP, 0x5000, 0);
    s.state.cachedShadowVmcs12.write(GUEST_ES_SELECTOR, 0x2b, 0);
    s.state.guestMode = true;
    s.sync.dirtyVmcs12 = false;
    return s;
  }

  it("read and write the cached shadow vmcs12, with no sync and no dirtying", () => {
    const s = inL2(VMCS_C, 0);
    expect(vmread(s, GUEST_RIP)).toBe(0x5000n);
    expect(vmread(s, GUEST_ES_SELECTOR)).toBe(0x2bn);
    expect(vmwrite(s, GUEST_CS_AR_BYTES, 0xf0ffn)).toBe(VMX_OUTCOME.SUCCEED);
    expect(vmwrite(s, EXCEPTION_BITMAP, 0x4000n)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.state.cachedShadowVmcs12.read(EXCEPTION_BITMAP)).toBe(0x4000);
    expect(s.state.cachedVmcs12.read(EXCEPTION_BITMAP)).toBe(0);
    expect(s.sync.calls).toEqual([]);
    expect(s.sync.dirtyVmcs12).toBe(false);
  });

  it("VMCS link pointer all ones: VMfailInvalid even though a VMCS is current (vmx-tests 4.6)", () => {
    const s = inL2(ALL_ONES, ALL_ONES);
    preseed12ViaL1(s);
    expect(flagsAfter(s, () => s.emu.vmread(s.ctx, GUEST_RIP, 0))).toBe(RFLAGS.CF);
    expect(flagsAfter(s, () => s.emu.vmwrite(s.ctx, GUEST_RIP, 0, 0, 0))).toBe(RFLAGS.CF);
    expect(flagsAfter(s, () => s.emu.vmread(s.ctx, ALL_ONES, 0))).toBe(RFLAGS.CF);
    expect(error(s)).toBe(12);
  });

  it("an unsupported field: VMfailValid(12) recorded in L1's vmcs12, not in the shadow (vmx-tests 4.3)", () => {
    const s = inL2(VMCS_C, 0);
    expect(flagsAfter(s, () => s.emu.vmread(s.ctx, CR3_TARGET_VALUE0, 0))).toBe(RFLAGS.ZF);
    expect(s.state.cachedVmcs12.read(VM_INSTRUCTION_ERROR)).toBe(12);
    expect(s.state.cachedShadowVmcs12.read(VM_INSTRUCTION_ERROR)).toBe(0);
  });

  it("read-only fields follow L1's IA32_VMX_MISC bit 29", () => {
    const s = inL2(VMCS_C, 0);
    expect(vmwrite(s, VM_EXIT_REASON, 3n)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.state.cachedShadowVmcs12.read(VM_EXIT_REASON)).toBe(3);
  });

  /** Pre-seeds error 12 through an L1 VMREAD (guest mode briefly off). */
  function preseed12ViaL1(s: Setup): void {
    s.state.guestMode = false;
    preseed12(s);
    s.state.guestMode = true;
  }
});

describe("VMLAUNCH / VMRESUME pre-checks (kvm: nested_vmx_run; vmx-tests §3)", () => {
  it("passes: nested_run_pending set, entry checks run, flags untouched, enter non-root mode", () => {
    const s = withCurrent();
    s.ctx.rflags = BEFORE;
    expect(s.emu.vmlaunch(s.ctx)).toBe(VMX_OUTCOME.ENTER_NON_ROOT);
    expect(s.ctx.rflags).toBe(BEFORE);
    expect(s.state.nestedRunPending).toBe(true);
    expect(s.checked).toEqual([s.state.cachedVmcs12]);
    expect(s.sync.calls).toEqual(["copyShadowToVmcs12"]);
  });

  it("no current VMCS: VMfailInvalid", () => {
    const s = inVmx();
    expect(flagsAfter(s, () => s.emu.vmlaunch(s.ctx))).toBe(RFLAGS.CF);
    expect(flagsAfter(s, () => s.emu.vmresume(s.ctx))).toBe(RFLAGS.CF);
    expect(s.checked).toEqual([]);
  });

  it("a shadow VMCS as current VMCS: VMfailInvalid, error field untouched, no shadow copy (3.6)", () => {
    const s = withCurrent();
    preseed12(s);
    s.memory.write32(VMCS_B, (VMCS12_REVISION | 0x80000000) >>> 0);
    expect(s.emu.vmptrld(s.ctx, VMCS_B, 0)).toBe(VMX_OUTCOME.SUCCEED);
    s.state.cachedVmcs12.write(VM_INSTRUCTION_ERROR, 12);
    s.sync.calls.length = 0;
    expect(flagsAfter(s, () => s.emu.vmlaunch(s.ctx))).toBe(RFLAGS.CF);
    expect(error(s)).toBe(12);
    expect(s.sync.calls).toEqual([]);
  });

  it("MOV-SS blocking with a launched VMCS: VMfailValid(26), RFLAGS[8:0] = 0x42 (3.3)", () => {
    const s = withCurrent();
    s.state.cachedVmcs12.launchState = 1;
    s.ctx.movSsBlocking = true;
    s.ctx.rflags = 0x2 | RFLAGS.CF | RFLAGS.ZF;
    expect(s.emu.vmlaunch(s.ctx)).toBe(26);
    expect(s.ctx.rflags & 0x1ff).toBe(0x42);
    expect(error(s)).toBe(26);
    // The shadow copy happened before the MOV-SS check.
    expect(s.sync.calls).toEqual(["copyShadowToVmcs12"]);
  });

  it("MOV-SS blocking without a current VMCS: VMfailInvalid, RFLAGS[8:0] = 0x03 (3.4)", () => {
    const s = withCurrent();
    expect(s.emu.vmclear(s.ctx, VMCS_A, 0)).toBe(VMX_OUTCOME.SUCCEED);
    s.ctx.movSsBlocking = true;
    s.ctx.rflags = 0x2;
    expect(s.emu.vmlaunch(s.ctx)).toBe(VMX_OUTCOME.FAIL_INVALID);
    expect(s.ctx.rflags & 0x1ff).toBe(0x3);
  });

  it("launch state: VMLAUNCH of a launched VMCS → 4, VMRESUME of a clear one → 5", () => {
    const s = withCurrent();
    expect(s.emu.vmresume(s.ctx)).toBe(5);
    s.state.cachedVmcs12.launchState = 1;
    expect(s.emu.vmlaunch(s.ctx)).toBe(4);
    expect(s.emu.vmresume(s.ctx)).toBe(VMX_OUTCOME.ENTER_NON_ROOT);
    expect(s.checked.length).toBe(1);
  });

  it("a launch_state other than 0 or 1 passes both comparisons (kvm: launch_state == launch)", () => {
    const s = withCurrent();
    s.state.cachedVmcs12.launchState = 2;
    expect(s.emu.vmlaunch(s.ctx)).toBe(VMX_OUTCOME.ENTER_NON_ROOT);
    expect(s.emu.vmresume(s.ctx)).toBe(VMX_OUTCOME.ENTER_NON_ROOT);
  });

  it("control / host-state check failures: VMfailValid(7) / (8) with exactly ZF (3.5)", () => {
    for (const entryResult of [7, 8] as const) {
      const s = withCurrent({ entryResult });
      expect(flagsAfter(s, () => s.emu.vmlaunch(s.ctx))).toBe(RFLAGS.ZF);
      expect(error(s)).toBe(entryResult);
      expect(s.state.nestedRunPending).toBe(false);
    }
  });

  it("a copy from the shadow VMCS is seen by the checks that follow it", () => {
    const s = withCurrent();
    s.sync.onCopyShadow = (vmcs12) => {
      vmcs12.launchState = 1;
    };
    expect(s.emu.vmlaunch(s.ctx)).toBe(4);
  });

  it("without shadowing: no shadow copy", () => {
    const s = withCurrent({ shadowing: false });
    expect(s.emu.vmlaunch(s.ctx)).toBe(VMX_OUTCOME.ENTER_NON_ROOT);
    expect(s.sync.calls).toEqual([]);
  });
});

describe("INVVPID (kvm: handle_invvpid; vmx-tests §2)", () => {
  it("type from -127 to 127 as a 64-bit register: 0..3 succeed, others VMfailValid(28) (2.1)", () => {
    const s = withCurrent();
    for (let type = -127; type <= 127; type++) {
      preseed12(s);
      const lo = type >>> 0;
      const hi = type < 0 ? ALL_ONES : 0;
      const outcome = s.emu.invvpid(s.ctx, lo, hi, 0xffff, 0, 0, 0);
      const offered = type >= 0 && type <= 3;
      expect(outcome, `type ${type}`).toBe(offered ? VMX_OUTCOME.SUCCEED : 28);
      expect(error(s)).toBe(offered ? 12 : 28);
    }
  });

  it("types not offered in IA32_VMX_EPT_VPID_CAP fail with 28; INVVPID not offered is #UD", () => {
    const base = KVM_DEFAULT_VMX_CAPABILITIES;
    const caps: VmxCapabilities = { ...base, eptVpidCap: { lo: base.eptVpidCap.lo, hi: 0x1 | (1 << 10) } };
    const s = withCurrent({ capabilities: caps });
    expect(s.emu.invvpid(s.ctx, 1, 0, 1, 0, 0, 0)).toBe(28);
    expect(s.emu.invvpid(s.ctx, 2, 0, 1, 0, 0, 0)).toBe(VMX_OUTCOME.SUCCEED);
    const none: VmxCapabilities = { ...base, eptVpidCap: { lo: base.eptVpidCap.lo, hi: 0 } };
    const t = withCurrent({ capabilities: none });
    expect(t.emu.invvpid(t.ctx, 2, 0, 1, 0, 0, 0)).toBe(VMX_OUTCOME.UD);
    const noVpid: VmxCapabilities = {
      ...base,
      procbasedCtls2: {
        lo: 0,
        hi: (base.procbasedCtls2.hi & ~SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_VPID) >>> 0,
      },
    };
    const u = withCurrent({ capabilities: noVpid });
    u.ctx.cpl = 3;
    expect(u.emu.invvpid(u.ctx, 2, 0, 1, 0, 0, 0)).toBe(VMX_OUTCOME.UD); // before the permission check
  });

  it("VPID ≥ 2^16 fails for every type (2.2)", () => {
    const s = withCurrent();
    for (const type of [0, 1, 2, 3]) {
      for (let i = 0; i < 64; i++) {
        const lo = i < 32 ? 2 ** i : 0;
        const hi = i < 32 ? 0 : 2 ** (i - 32);
        const expected = i >= 16 ? 28 : VMX_OUTCOME.SUCCEED;
        expect(s.emu.invvpid(s.ctx, type, 0, lo, hi, 0, 0), `type ${type} vpid 1<<${i}`).toBe(expected);
      }
    }
  });

  it("VPID 0 fails except for the all-context type (2.3)", () => {
    const s = withCurrent();
    expect(s.emu.invvpid(s.ctx, 0, 0, 0, 0, 0, 0)).toBe(28);
    expect(s.emu.invvpid(s.ctx, 1, 0, 0, 0, 0, 0)).toBe(28);
    expect(s.emu.invvpid(s.ctx, 2, 0, 0, 0, 0, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.emu.invvpid(s.ctx, 3, 0, 0, 0, 0, 0)).toBe(28);
  });

  it("individual-address with a non-canonical address fails; the address matters only for type 0 (2.4)", () => {
    // kvm: is_noncanonical_invlpg_address — the host CPU's width (max_host_virt_addr_bits), not
    // L1's paging mode: on a 4-level host every address with bit 47 ≠ bits 63:48 fails.
    const s = withCurrent({ host: { la57: false } });
    const nonCanonical48 = 0x0000_8000; // high word: bit 47 set, bits 63:48 clear
    for (const l1La57 of [false, true]) {
      s.ctx.cr4Lo = l1La57 ? s.ctx.cr4Lo | CR4.LA57 : s.ctx.cr4Lo & ~CR4.LA57;
      expect(s.emu.invvpid(s.ctx, 0, 0, 1, 0, 0, nonCanonical48)).toBe(28);
      expect(s.emu.invvpid(s.ctx, 0, 0, 1, 0, 0, 0xffff_8000)).toBe(VMX_OUTCOME.SUCCEED);
      expect(s.emu.invvpid(s.ctx, 1, 0, 1, 0, 0, nonCanonical48)).toBe(VMX_OUTCOME.SUCCEED);
    }
  });

  it("on an LA57 host (the default) the address is checked against 57 bits even when L1 uses 4-level paging", () => {
    for (const options of [{}, { host: { la57: true } }]) {
      const s = withCurrent(options);
      expect(s.emu.invalidationAddressBits).toBe(57);
      s.ctx.cr4Lo &= ~CR4.LA57;
      // 0x0000_8000_0000_0000: not canonical for 48 bits, canonical for 57 (the reviewer's case).
      expect(s.emu.invvpid(s.ctx, 0, 0, 1, 0, 0, 0x0000_8000)).toBe(VMX_OUTCOME.SUCCEED);
      expect(s.emu.invvpid(s.ctx, 0, 0, 1, 0, 0, 0xff00_0000)).toBe(VMX_OUTCOME.SUCCEED);
      expect(s.emu.invvpid(s.ctx, 0, 0, 1, 0, 0, 0x0100_0000)).toBe(28); // bit 56 set, bits 63:57 clear
      s.ctx.cr4Lo |= CR4.LA57;
      expect(s.emu.invvpid(s.ctx, 0, 0, 1, 0, 0, 0x0100_0000)).toBe(28);
    }
  });

  /** Any 64-bit value, or one near the 48- and 57-bit boundaries (sign-extended from 58 bits). */
  const addressArb = fc.oneof(
    fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    fc.bigInt({ min: -(1n << 57n), max: (1n << 57n) - 1n }).map((v) => BigInt.asUintN(64, v)),
  );

  it("host width: canonical for the host's width exactly when bits 63:width-1 agree (property)", () => {
    fc.assert(
      fc.property(fc.boolean(), addressArb, (la57, address) => {
        const s = withCurrent({ host: { la57 } });
        const bits = la57 ? 57n : 48n;
        const top = address >> (bits - 1n);
        const canonical = top === 0n || top === (1n << (65n - bits)) - 1n;
        const lo = Number(address & 0xffffffffn);
        const hi = Number(address >> 32n);
        expect(s.emu.invvpid(s.ctx, 0, 0, 1, 0, lo, hi)).toBe(canonical ? VMX_OUTCOME.SUCCEED : 28);
      }),
      { numRuns: 200 },
    );
  });

  it("without a current VMCS the failures are VMfailInvalid; the descriptor fault follows the type check", () => {
    const s = inVmx();
    expect(s.emu.invvpid(s.ctx, 7, 0, 1, 0, 0, 0)).toBe(VMX_OUTCOME.FAIL_INVALID);
    s.ctx.operandFault = VMX_OUTCOME.PF;
    expect(s.emu.invvpid(s.ctx, 7, 0, 1, 0, 0, 0)).toBe(VMX_OUTCOME.FAIL_INVALID);
    expect(s.emu.invvpid(s.ctx, 2, 0, 1, 0, 0, 0)).toBe(VMX_OUTCOME.PF);
  });
});

describe("INVEPT (kvm: handle_invept; vmx-tests 2.11, 2.12)", () => {
  /** A valid EPTP: WB, 4-level walk, root at 0x5000. */
  const EPTP = 0x5000 | 6 | (3 << 3);

  it("type 0 (reserved) and types ≥ 3 fail with 28 (2.11)", () => {
    const s = withCurrent();
    expect(s.emu.invept(s.ctx, 0, 0, EPTP, 0)).toBe(28);
    expect(s.emu.invept(s.ctx, 3, 0, EPTP, 0)).toBe(28);
    expect(s.emu.invept(s.ctx, 1, 1, EPTP, 0)).toBe(28);
    expect(s.emu.invept(s.ctx, 32, 0, EPTP, 0)).toBe(28);
  });

  it("single-context with a valid EPTP and all-context succeed (2.12)", () => {
    const s = withCurrent();
    preseed12(s);
    expect(s.emu.invept(s.ctx, 1, 0, EPTP, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(s.emu.invept(s.ctx, 2, 0, 0xfff, ALL_ONES)).toBe(VMX_OUTCOME.SUCCEED); // EPTP unchecked
    expect(error(s)).toBe(12);
  });

  it("single-context with an EPTP KVM rejects fails with 28 (kvm: nested_vmx_check_eptp)", () => {
    const s = withCurrent({ maxPhysAddr: 46 });
    expect(s.emu.invept(s.ctx, 1, 0, (EPTP & ~7) | 1, 0)).toBe(28); // memory type 1
    expect(s.emu.invept(s.ctx, 1, 0, (EPTP & ~0x38) | (1 << 3), 0)).toBe(28); // 2-level walk
    expect(s.emu.invept(s.ctx, 1, 0, EPTP | 0x100, 0)).toBe(28); // reserved bit 8
    expect(s.emu.invept(s.ctx, 1, 0, EPTP | 0x80, 0)).toBe(28); // bit 7 (no supervisor shadow stack)
    expect(s.emu.invept(s.ctx, 1, 0, EPTP, 2 ** (46 - 32))).toBe(28); // beyond MAXPHYADDR
    expect(s.emu.invept(s.ctx, 1, 0, EPTP | 0x40, 0)).toBe(VMX_OUTCOME.SUCCEED); // A/D offered
  });

  it("#UD when EPT or INVEPT is not offered to L1", () => {
    const base = KVM_DEFAULT_VMX_CAPABILITIES;
    const caps: VmxCapabilities = {
      ...base,
      procbasedCtls2: {
        lo: 0,
        hi: (base.procbasedCtls2.hi & ~SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_EPT) >>> 0,
      },
    };
    const s = withCurrent({ capabilities: caps });
    s.ctx.cpl = 3;
    expect(s.emu.invept(s.ctx, 2, 0, EPTP, 0)).toBe(VMX_OUTCOME.UD); // before the permission check
  });
});

describe("meter", () => {
  it("counts every emulated instruction once, whatever its outcome, and vmcs12 work", () => {
    const s = setup();
    s.emu.vmptrld(s.ctx, VMCS_A, 0); // #UD
    s.emu.vmxon(s.ctx, VMXON_REGION, 0);
    s.emu.vmptrld(s.ctx, VMCS_A, 0);
    s.emu.vmwrite(s.ctx, GUEST_RIP, 0, 1, 0);
    s.emu.vmread(s.ctx, GUEST_RIP, 0);
    s.emu.vmread(s.ctx, ALL_ONES, 0);
    s.emu.vmlaunch(s.ctx);
    s.emu.vmclear(s.ctx, VMCS_A, 0);
    s.emu.vmptrst(s.ctx);
    s.emu.invept(s.ctx, 2, 0, 0, 0);
    s.emu.invvpid(s.ctx, 2, 0, 0, 0, 0, 0);
    s.emu.vmresume(s.ctx);
    s.emu.vmxoff(s.ctx);
    expect(s.meter.diff({})).toEqual({
      EMULATED_VMXON: 1,
      EMULATED_VMXOFF: 1,
      EMULATED_VMCLEAR: 1,
      EMULATED_VMPTRLD: 2,
      EMULATED_VMPTRST: 1,
      EMULATED_VMREAD: 2,
      EMULATED_VMWRITE: 1,
      EMULATED_VMLAUNCH: 1,
      EMULATED_VMRESUME: 1,
      EMULATED_INVEPT: 1,
      EMULATED_INVVPID: 1,
      // header of VMPTRLD, VMREAD, shadow bit + launch state of VMLAUNCH
      VMCS12_READ: 4,
      // VMWRITE, error 12, VMCLEAR's launch_state
      VMCS12_WRITE: 3,
      VMCS12_IMAGE_LOAD: 1,
      VMCS12_IMAGE_FLUSH: 1,
    });
  });

  it("works with any Meter (counts through Meter.count)", () => {
    const seen: number[] = [];
    const memory = new SparseMemory();
    memory.write32(VMXON_REGION, VMCS12_REVISION);
    const emu = new VmxInstructionEmulator({
      memory,
      sync: new RecordingSync(),
      entryChecks: () => 0,
      meter: { count: (event) => seen.push(event) },
    });
    expect(emu.vmxon(new VmxInstructionContext(), VMXON_REGION, 0)).toBe(VMX_OUTCOME.SUCCEED);
    expect(seen).toEqual([VMX_EVENTS.EMULATED_VMXON]);
  });

  it("rejects a MAXPHYADDR outside 32..52", () => {
    expect(
      () =>
        new VmxInstructionEmulator({
          memory: new SparseMemory(),
          sync: new RecordingSync(),
          entryChecks: () => 0,
          maxPhysAddr: 60,
        }),
    ).toThrow(RangeError);
  });
});

describe("vmcs12 caching against a simple model (property)", () => {
  const REGIONS = [VMCS_A, VMCS_B, VMCS_C] as const;
  const FIELDS = [
    { encoding: GUEST_RIP, mask: (1n << 64n) - 1n },
    { encoding: GUEST_CS_SELECTOR, mask: 0xffffn },
    { encoding: EXCEPTION_BITMAP, mask: 0xffffffffn },
    { encoding: TSC_OFFSET, mask: (1n << 64n) - 1n },
    { encoding: GUEST_ES_AR_BYTES, mask: 0x1f0ffn },
    { encoding: EXIT_QUALIFICATION, mask: (1n << 64n) - 1n },
  ] as const;

  type Op =
    | { kind: "vmptrld"; region: number }
    | { kind: "vmclear"; region: number }
    | { kind: "vmwrite"; field: number; value: bigint }
    | { kind: "vmread"; field: number };

  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant("vmptrld" as const), region: fc.integer({ min: 0, max: 2 }) }),
    fc.record({ kind: fc.constant("vmclear" as const), region: fc.integer({ min: 0, max: 2 }) }),
    fc.record({
      kind: fc.constant("vmwrite" as const),
      field: fc.integer({ min: 0, max: FIELDS.length - 1 }),
      value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    }),
    fc.record({
      kind: fc.constant("vmread" as const),
      field: fc.integer({ min: 0, max: FIELDS.length - 1 }),
    }),
  );

  it("every VMREAD returns what the VMCS it reads from last had written, across VMCS switches", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), fc.boolean(), (ops, shadowing) => {
        const s = inVmx({ shadowing });
        const model = REGIONS.map(() => FIELDS.map(() => 0n));
        let current = -1;
        for (const o of ops) {
          switch (o.kind) {
            case "vmptrld":
              expect(s.emu.vmptrld(s.ctx, REGIONS[o.region]!, 0)).toBe(VMX_OUTCOME.SUCCEED);
              current = o.region;
              break;
            case "vmclear":
              expect(s.emu.vmclear(s.ctx, REGIONS[o.region]!, 0)).toBe(VMX_OUTCOME.SUCCEED);
              if (current === o.region) current = -1;
              break;
            case "vmwrite": {
              const f = FIELDS[o.field]!;
              const outcome = vmwrite(s, f.encoding, o.value);
              if (current < 0) expect(outcome).toBe(VMX_OUTCOME.FAIL_INVALID);
              else {
                expect(outcome).toBe(VMX_OUTCOME.SUCCEED);
                model[current]![o.field] = o.value & f.mask;
              }
              break;
            }
            case "vmread": {
              const f = FIELDS[o.field]!;
              if (current < 0) expect(s.emu.vmread(s.ctx, f.encoding, 0)).toBe(VMX_OUTCOME.FAIL_INVALID);
              else expect(vmread(s, f.encoding)).toBe(model[current]![o.field]);
              break;
            }
          }
          expect(s.state.currentVmptr).toBe(current < 0 ? INVALID_GPA : REGIONS[current]);
        }
        // Releasing everything leaves each region's image in memory equal to the model.
        if (current >= 0) s.emu.vmclear(s.ctx, REGIONS[current]!, 0);
        REGIONS.forEach((region, r) => {
          expect(s.emu.vmptrld(s.ctx, region, 0)).toBe(VMX_OUTCOME.SUCCEED);
          FIELDS.forEach((f, i) => {
            expect(vmread(s, f.encoding)).toBe(model[r]![i]);
          });
        });
      }),
      { numRuns: 150 },
    );
  });
});
