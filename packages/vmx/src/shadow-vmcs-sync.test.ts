import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SECONDARY_EXEC_CTLS } from "./controls";
import { ControlsShadow } from "./controls-shadow";
import { fieldByName, VMCS_FIELDS } from "./field-catalog";
import { ACCESS_TYPE, FIELD_TYPE } from "./field-encoding";
import type { HardwareVmcs } from "./hardware-vmcs";
import { CountingMeter, type MeterSnapshot } from "./meter";
import { RARE_GUEST_SYNC_FIELDS, type ShadowHostFeatures, VMCS12_EXT_FIELDS } from "./shadow-fields";
import {
  exitSyncFields,
  rareSyncFields,
  ShadowVmcsSync,
  type ShadowVmcsSyncOptions,
} from "./shadow-vmcs-sync";
import { VmcsProcessor } from "./vmcs-processor";
import { Vmcs12 } from "./vmcs12";
import { vmcs12Layout } from "./vmcs12-layout";
import { VMX_EVENTS } from "./vmx-events";

const enc = (name: string): number => fieldByName(name)!.encoding;
const SHADOW_VMCS = SECONDARY_EXEC_CTLS.SECONDARY_EXEC_SHADOW_VMCS;

/** The seed-003 flags this module takes, plus whether L0 uses shadowing at all. */
interface Flags {
  readonly A: boolean; // readOnlyShadowFields
  readonly B: boolean; // precomputedShadowOffsets
  readonly C: boolean; // lazyRareGuestSync
  readonly E: boolean; // entryVmwriteTrims
  readonly F: boolean; // controlsShadow
  readonly shadowing: boolean;
}
const ALL_ON: Flags = { A: true, B: true, C: true, E: true, F: true, shadowing: true };
const ALL_OFF: Flags = { A: false, B: false, C: false, E: false, F: false, shadowing: true };

/** A processor in VMX root operation with vmcs01 current, vmcs02, a shadow VMCS and KVM's sync state. */
function machine(flags: Flags, extra: Partial<ShadowVmcsSyncOptions> = {}) {
  const meter = new CountingMeter([VMX_EVENTS]);
  const cpu = new VmcsProcessor({ meter });
  cpu.vmxon(0x1000);
  const vmcs01 = cpu.createVmcs(0x2000);
  const vmcs02 = cpu.createVmcs(0x3000);
  const shadow = cpu.createVmcs(0x4000, { shadow: true });
  cpu.vmptrld(vmcs01.address);
  const controls = new ControlsShadow(cpu, { perVmcsShadow: flags.F });
  controls.switchTo(vmcs01);
  const sync = new ShadowVmcsSync({
    controls,
    vmcs01,
    vmcs02,
    shadowVmcs: flags.shadowing ? shadow : null,
    readOnlyShadowFields: flags.A,
    precomputedShadowOffsets: flags.B,
    lazyRareGuestSync: flags.C,
    entryVmwriteTrims: flags.E,
    controlsShadow: flags.F,
    ...extra,
  });
  const vmcs12 = new Vmcs12();
  return { meter, cpu, vmcs01, vmcs02, shadow, controls, sync, vmcs12 };
}
type Machine = ReturnType<typeof machine>;

function switchTo(m: Machine, vmcs: HardwareVmcs): void {
  m.cpu.vmptrld(vmcs.address);
  m.controls.switchTo(vmcs);
}

/** Counts of `action` alone. */
function measure(m: Machine, action: () => void): MeterSnapshot {
  const before = m.meter.snapshot();
  action();
  return m.meter.diff(before);
}

describe("ShadowVmcsSync: the seed-003 summary-table counters (reference kvm-vmx.md §10)", () => {
  it("copy_shadow_to_vmcs12 (nested entry): 34 VMREADs all flags off → 24 all on, +3 VMCS-pointer ops", () => {
    const off = machine(ALL_OFF);
    off.sync.currentVmcsLoaded(off.vmcs12);
    expect(measure(off, () => off.sync.copyShadowToVmcs12(off.vmcs12))).toEqual({
      VMPTRLD: 2,
      VMCLEAR: 1,
      VMREAD: 34,
      SHADOW_FIELD_OFFSET_LOOKUP: 34,
      VMCS12_WRITE: 34,
    });
    const on = machine(ALL_ON);
    on.sync.currentVmcsLoaded(on.vmcs12);
    expect(measure(on, () => on.sync.copyShadowToVmcs12(on.vmcs12))).toEqual({
      VMPTRLD: 2,
      VMCLEAR: 1,
      VMREAD: 24,
      VMCS12_WRITE: 24,
    });
    expect(on.cpu.current).toBe(on.vmcs01);
  });

  it("copy_vmcs12_to_shadow (before L1 runs): 34 VMWRITEs → 35", () => {
    for (const [flags, writes] of [
      [ALL_OFF, 34],
      [ALL_ON, 35],
    ] as const) {
      const m = machine(flags);
      m.sync.currentVmcsLoaded(m.vmcs12);
      const counts = measure(m, () => expect(m.sync.syncVmcs12ToShadow(m.vmcs12)).toBe(true));
      expect(counts.VMWRITE).toBe(writes);
      expect(counts.VMCS12_READ).toBe(writes);
      expect(counts.VMPTRLD).toBe(2);
      expect(counts.VMCLEAR).toBe(1);
      expect(m.sync.needVmcs12ToShadowSync).toBe(false);
      expect(measure(m, () => expect(m.sync.syncVmcs12ToShadow(m.vmcs12)).toBe(false))).toEqual({});
    }
  });

  it("each flag alone moves the copy sizes as the series did", () => {
    const sizes = (flags: Partial<Flags>) => machine({ ...ALL_OFF, ...flags }).sync.copyLengths;
    expect(sizes({})).toEqual([34, 34]);
    expect(sizes({ A: true })).toEqual([23, 34]); // RO no longer copied back; CS/SS AR now RO
    expect(sizes({ F: true })).toEqual([35, 35]); // pin controls shadowed
    expect(sizes({ A: true, F: true })).toEqual([24, 35]);
    // An L1 without VMWRITE-to-any cannot write RO fields, so v5.2 skips copying them back.
    expect(machine(ALL_OFF, { l1VmwriteAnyField: false }).sync.copyLengths).toEqual([25, 34]);
    // A host without PML, preemption timer and APICv drops three RW fields.
    const host: ShadowHostFeatures = { pml: false, preemptionTimer: false, apicv: false };
    expect(machine(ALL_ON, { host }).sync.copyLengths).toEqual([21, 32]);
  });

  it("shadow-field offset lookups per round trip: 68 → 0 (flag B)", () => {
    for (const [B, lookups] of [
      [false, 68],
      [true, 0],
    ] as const) {
      const m = machine({ ...ALL_OFF, B });
      m.sync.currentVmcsLoaded(m.vmcs12);
      const counts = measure(m, () => {
        m.sync.copyShadowToVmcs12(m.vmcs12);
        m.sync.copyVmcs12ToShadow(m.vmcs12);
      });
      expect(counts.SHADOW_FIELD_OFFSET_LOOKUP ?? 0).toBe(lookups);
    }
  });

  it("exit-side unconditional VMREADs: 52 (all off) → 10 (flags C and E), 17 with C alone, 45 with E alone", () => {
    const exitReads = (flags: Flags) => {
      const m = machine(flags);
      switchTo(m, m.vmcs02);
      return measure(m, () => m.sync.syncVmcs02ToVmcs12(m.vmcs12, 0, 0)).VMREAD;
    };
    expect(exitReads(ALL_OFF)).toBe(52);
    expect(exitReads(ALL_ON)).toBe(10);
    expect(exitReads({ ...ALL_OFF, C: true })).toBe(17);
    expect(exitReads({ ...ALL_OFF, E: true })).toBe(45);
    expect(exitSyncFields({ lazyRareGuestSync: false, entryVmwriteTrims: false })).toHaveLength(52);
    expect(exitSyncFields().map((f) => f.name)).toEqual([
      "GUEST_CR0",
      "CR0_READ_SHADOW",
      "GUEST_CR4",
      "CR4_READ_SHADOW",
      "GUEST_RFLAGS",
      "GUEST_CS_AR_BYTES",
      "GUEST_SS_AR_BYTES",
      "GUEST_INTERRUPTIBILITY_INFO",
      "GUEST_CR3",
      "GUEST_LINEAR_ADDRESS",
    ]);
    expect(exitSyncFields({ ept: false })).toHaveLength(9);
    expect(
      exitSyncFields({ lazyRareGuestSync: false, bndcfgsFromVmcs02: true, entryVmwriteTrims: false }),
    ).toHaveLength(53);
  });

  it("rare fields: 35 VMREADs deferred per exit, paid once (+2 VMPTRLD) when L1 needs them", () => {
    const m = machine(ALL_ON);
    switchTo(m, m.vmcs02);
    expect(measure(m, () => m.sync.syncVmcs02ToVmcs12(m.vmcs12, 0, 0)).RARE_FIELD_VMREAD_DEFERRED).toBe(35);
    expect(m.sync.needSyncVmcs02ToVmcs12Rare).toBe(true);
    switchTo(m, m.vmcs01);
    expect(measure(m, () => m.sync.syncRareFieldsIfPending(m.vmcs12))).toEqual({
      VMCS02_RARE_SYNC: 1,
      VMPTRLD: 2,
      VMREAD: 35,
      VMCS12_WRITE: 35,
    });
    expect(m.cpu.current).toBe(m.vmcs01);
    expect(m.sync.needSyncVmcs02ToVmcs12Rare).toBe(false);
    expect(measure(m, () => m.sync.syncRareFieldsIfPending(m.vmcs12))).toEqual({});

    const eager = machine(ALL_OFF);
    switchTo(eager, eager.vmcs02);
    expect(
      measure(eager, () => eager.sync.syncVmcs02ToVmcs12(eager.vmcs12, 0, 0)).RARE_FIELD_VMREAD_DEFERRED,
    ).toBe(undefined);
    expect(eager.sync.needSyncVmcs02ToVmcs12Rare).toBe(false);
    expect(rareSyncFields({ lazyRareGuestSync: false })).toHaveLength(0);
    expect(rareSyncFields({ bndcfgsFromVmcs02: true })).toHaveLength(36);
  });
});

describe("ShadowVmcsSync: values", () => {
  it("copy_shadow_to_vmcs12 brings L1's shadow writes into vmcs12; copy_vmcs12_to_shadow the reverse", () => {
    for (const B of [true, false]) {
      const m = machine({ ...ALL_ON, B });
      m.sync.currentVmcsLoaded(m.vmcs12);
      m.shadow.writeBig(enc("GUEST_RIP"), 0xffff_8000_1234_5678n);
      m.shadow.writeBig(enc("HOST_FS_SELECTOR"), 0x1234n);
      m.shadow.writeBig(enc("PIN_BASED_VM_EXEC_CONTROL"), 0x7fn);
      m.sync.copyShadowToVmcs12(m.vmcs12);
      expect(m.vmcs12.readBig(enc("GUEST_RIP"))).toBe(0xffff_8000_1234_5678n);
      expect(m.vmcs12.readBig(enc("HOST_FS_SELECTOR"))).toBe(0x1234n);
      expect(m.vmcs12.readBig(enc("PIN_BASED_VM_EXEC_CONTROL"))).toBe(0x7fn);
      m.vmcs12.writeBig(enc("EXIT_QUALIFICATION"), 0xdead_beef_0000_0001n);
      m.vmcs12.writeBig(enc("GUEST_PHYSICAL_ADDRESS"), 0x1_2345_6000n);
      m.sync.copyVmcs12ToShadow(m.vmcs12);
      expect(m.shadow.readBig(enc("EXIT_QUALIFICATION"))).toBe(0xdead_beef_0000_0001n);
      expect(m.shadow.readBig(enc("GUEST_PHYSICAL_ADDRESS_HIGH"))).toBe(1n);
    }
  });

  it("v5.2 copies L1's RO writes back; 6.12 does not need to (they are intercepted)", () => {
    const old = machine(ALL_OFF);
    old.sync.currentVmcsLoaded(old.vmcs12);
    expect(old.sync.bitmaps.interceptsVmwrite(enc("VM_EXIT_REASON"))).toBe(false);
    old.shadow.writeBig(enc("VM_EXIT_REASON"), 42n);
    old.sync.copyShadowToVmcs12(old.vmcs12);
    expect(old.vmcs12.readBig(enc("VM_EXIT_REASON"))).toBe(42n);

    const now = machine(ALL_ON);
    expect(now.sync.bitmaps.interceptsVmwrite(enc("VM_EXIT_REASON"))).toBe(true);
  });

  it("writeThroughReadOnly makes an intercepted RO write visible in the shadow VMCS", () => {
    const m = machine(ALL_ON);
    m.sync.currentVmcsLoaded(m.vmcs12);
    m.sync.syncVmcs12ToShadow(m.vmcs12);
    const ar = enc("GUEST_CS_AR_BYTES");
    expect(m.sync.isShadowRo(ar)).toBe(true);
    const counts = measure(m, () => m.sync.writeThroughReadOnly(ar, 0xa09b, 0));
    expect(counts).toEqual({ VMPTRLD: 2, VMWRITE: 1, VMCLEAR: 1 });
    expect(m.shadow.read(ar)).toBe(0xa09b);
    expect(m.cpu.current).toBe(m.vmcs01);
    const gpaHigh = enc("GUEST_PHYSICAL_ADDRESS_HIGH");
    m.sync.writeThroughReadOnly(gpaHigh, 0x7, 0);
    expect(m.shadow.readBig(enc("GUEST_PHYSICAL_ADDRESS"))).toBe(0x7_0000_0000n);
  });

  it("writeThroughReadOnly does nothing for a field that is not RO, without flag A, or without shadowing", () => {
    const m = machine(ALL_ON);
    m.sync.currentVmcsLoaded(m.vmcs12);
    expect(measure(m, () => m.sync.writeThroughReadOnly(enc("GUEST_ES_SELECTOR"), 8, 0))).toEqual({});
    expect(measure(m, () => m.sync.writeThroughReadOnly(enc("GUEST_RIP"), 8, 0))).toEqual({});
    const old = machine(ALL_OFF);
    old.sync.currentVmcsLoaded(old.vmcs12);
    expect(measure(old, () => old.sync.writeThroughReadOnly(enc("VM_EXIT_REASON"), 8, 0))).toEqual({});
    const none = machine({ ...ALL_ON, shadowing: false });
    expect(measure(none, () => none.sync.writeThroughReadOnly(enc("VM_EXIT_REASON"), 8, 0))).toEqual({});
  });

  it("VMPTRLD/VMCLEAR bookkeeping: shadowing turned on in vmcs01, then off with a final copy back", () => {
    const m = machine(ALL_ON);
    m.sync.currentVmcsLoaded(m.vmcs12);
    expect(m.sync.dirtyVmcs12).toBe(true);
    expect(m.sync.needVmcs12ToShadowSync).toBe(true);
    expect(m.vmcs01.read(enc("SECONDARY_VM_EXEC_CONTROL")) & SHADOW_VMCS).toBe(SHADOW_VMCS);
    expect(m.vmcs01.readBig(enc("VMCS_LINK_POINTER"))).toBe(BigInt(m.shadow.address));
    m.sync.syncVmcs12ToShadow(m.vmcs12);
    m.shadow.writeBig(enc("GUEST_RSP"), 0x7000n);
    m.sync.currentVmcsReleased(m.vmcs12);
    expect(m.vmcs12.readBig(enc("GUEST_RSP"))).toBe(0x7000n);
    expect(m.vmcs01.read(enc("SECONDARY_VM_EXEC_CONTROL")) & SHADOW_VMCS).toBe(0);
    expect(m.vmcs01.readBig(enc("VMCS_LINK_POINTER"))).toBe(0xffff_ffff_ffff_ffffn);
    expect(m.sync.needVmcs12ToShadowSync).toBe(false);
  });

  it("without shadowing: the port answers accordingly and the copies cost nothing", () => {
    const m = machine({ ...ALL_ON, shadowing: false });
    expect(m.sync.shadowingEnabled).toBe(false);
    const counts = measure(m, () => {
      m.sync.currentVmcsLoaded(m.vmcs12);
      m.sync.copyShadowToVmcs12(m.vmcs12);
      m.sync.requestVmcs12ToShadowSync();
      m.sync.syncVmcs12ToShadow(m.vmcs12);
      m.sync.currentVmcsReleased(m.vmcs12);
    });
    expect(counts).toEqual({});
    expect(m.sync.dirtyVmcs12).toBe(true);
    // Membership is the header's, whatever the hardware does (kvm: is_shadow_field_rw).
    expect(m.sync.isShadowRw(enc("GUEST_RIP"))).toBe(true);
  });

  it("the rare sync copies vmcs02's rare guest fields; isRareField follows flag C", () => {
    const m = machine(ALL_ON);
    let v = 1n;
    for (const f of RARE_GUEST_SYNC_FIELDS) m.vmcs02.writeBig(f.encoding, v++ * 0x1_0001n);
    switchTo(m, m.vmcs02);
    m.sync.syncVmcs02ToVmcs12(m.vmcs12, 0, 0);
    expect(m.vmcs12.readBig(enc("GUEST_TR_BASE"))).toBe(0n); // still stale
    switchTo(m, m.vmcs01);
    m.sync.syncRareFieldsIfPending(m.vmcs12);
    for (const f of RARE_GUEST_SYNC_FIELDS)
      expect(m.vmcs12.readBig(f.encoding), f.name).toBe(m.vmcs02.readBig(f.encoding));
    for (const f of VMCS12_EXT_FIELDS) expect(m.sync.isRareField(f.encoding), f.name).toBe(true);
    expect(m.sync.isRareField(enc("GUEST_RIP"))).toBe(false);
    const eager = machine(ALL_OFF);
    expect(eager.sync.isRareField(enc("GUEST_TR_BASE"))).toBe(false);
  });

  it("merges CR0 like vmcs12_guest_cr0: L0-given bits from GUEST_CR0, L1's from vmcs12, the rest from the read shadow", () => {
    const m = machine(ALL_ON);
    m.vmcs12.writeBig(enc("CR0_GUEST_HOST_MASK"), 0x0000_0000_0000_00f0n); // L1 owns 7:4
    m.vmcs12.writeBig(enc("GUEST_CR0"), 0x0000_0000_0000_00a0n);
    m.vmcs02.writeBig(enc("GUEST_CR0"), 0x0000_0000_0000_0f0fn);
    m.vmcs02.writeBig(enc("CR0_READ_SHADOW"), 0x0000_0000_8000_0c0cn);
    switchTo(m, m.vmcs02);
    m.sync.syncVmcs02ToVmcs12(m.vmcs12, 0x0000_000f, 0);
    // guest-owned 3:0 from GUEST_CR0 (0xf), L1's 7:4 from vmcs12 (0xa0), the rest from the read shadow.
    expect(m.vmcs12.readBig(enc("GUEST_CR0"))).toBe(0x8000_0cafn);
  });

  it("refuses to run a sync in the wrong VMCS context (a caller bug)", () => {
    const m = machine(ALL_ON);
    expect(() => m.sync.syncVmcs02ToVmcs12(m.vmcs12, 0, 0)).toThrow(/vmcs02/);
    switchTo(m, m.vmcs02);
    m.sync.syncVmcs02ToVmcs12(m.vmcs12, 0, 0);
    expect(() => m.sync.syncRareFieldsIfPending(m.vmcs12)).toThrow(/vmcs01/);
    expect(() => machine(ALL_ON, { shadowVmcs: m.vmcs01 })).toThrow(/shadow-VMCS indicator/);
  });

  it("syncFieldFromVmcs02 copies one conditional field (e.g. a PAE PDPTR)", () => {
    const m = machine(ALL_ON);
    m.vmcs02.writeBig(enc("GUEST_PDPTR2"), 0x1234_5000_0001n);
    switchTo(m, m.vmcs02);
    expect(measure(m, () => m.sync.syncFieldFromVmcs02(m.vmcs12, enc("GUEST_PDPTR2")))).toEqual({
      VMREAD: 1,
      VMCS12_WRITE: 1,
    });
    expect(m.vmcs12.readBig(enc("GUEST_PDPTR2"))).toBe(0x1234_5000_0001n);
    expect(() => m.sync.syncFieldFromVmcs02(m.vmcs12, enc("PLE_GAP"))).toThrow(RangeError);
    switchTo(m, m.vmcs01);
    expect(() => m.sync.syncFieldFromVmcs02(m.vmcs12, enc("GUEST_PDPTR2"))).toThrow(/vmcs02/);
  });
});

// ---------------------------------------------------------------------------------------------
// Differential property: the flags change how much work L0 does, never what L1 observes.
// ---------------------------------------------------------------------------------------------

const AR_FIRST = enc("GUEST_ES_AR_BYTES");
const AR_LAST = enc("GUEST_TR_AR_BYTES");
const isAr = (e: number) => e >= AR_FIRST && e <= AR_LAST;
/** Every encoding vmcs12 stores (full and `_HIGH`): what L1's VMREAD/VMWRITE can name. */
const VMCS12_ENCODINGS = vmcs12Layout().fields.map((f) => f.encoding);
const GUEST_FIELDS = VMCS_FIELDS.filter(
  (f) =>
    f.type === FIELD_TYPE.GUEST && f.access === ACCESS_TYPE.FULL && VMCS12_ENCODINGS.includes(f.encoding),
).map((f) => f.encoding);
/** What L2 (or the processor at the exit) changes in vmcs02 in this harness: fields every era syncs back. */
const L2_CHANGES = [
  ...["GUEST_CR0", "GUEST_CR4", "GUEST_CR3", "GUEST_RFLAGS", "GUEST_INTERRUPTIBILITY_INFO"].map(enc),
  enc("GUEST_LINEAR_ADDRESS"),
  enc("GUEST_CS_AR_BYTES"),
  enc("GUEST_SS_AR_BYTES"),
  ...RARE_GUEST_SYNC_FIELDS.map((f) => f.encoding),
];
const RW_LIKE = [
  "GUEST_RIP",
  "GUEST_RSP",
  "CPU_BASED_VM_EXEC_CONTROL",
  "PIN_BASED_VM_EXEC_CONTROL",
  "GUEST_CS_AR_BYTES",
];
const CR0_OWNED = 0x0000_0008; // CR0.TS given to the guest
const CR4_OWNED = 0x0000_0200; // CR4.OSFXSR

type Op =
  | { kind: "write"; field: number; value: bigint }
  | { kind: "read"; field: number }
  | { kind: "run"; changes: { field: number; value: bigint }[]; reason: number; qualification: bigint }
  | { kind: "reload" };

/** Access-rights values as hardware stores them (bits 16, 15:12, 7:0), so masking never differs. */
function fit(field: number, value: bigint): bigint {
  return isAr(field) ? value & 0x1f0ffn : value;
}

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const anyField = fc.constantFrom(...VMCS12_ENCODINGS);
const writeField = fc.oneof(fc.constantFrom(...RW_LIKE.map(enc)), anyField);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("write" as const), field: writeField, value: u64 }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("read" as const), field: anyField }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("run" as const),
      changes: fc.array(fc.record({ field: fc.constantFrom(...L2_CHANGES), value: u64 }), { maxLength: 8 }),
      reason: fc.integer({ min: 0, max: 70 }),
      qualification: u64,
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "reload" as const }) },
);
const flagsArb: fc.Arbitrary<Flags> = fc.record({
  A: fc.boolean(),
  B: fc.boolean(),
  C: fc.boolean(),
  E: fc.boolean(),
  F: fc.boolean(),
  shadowing: fc.boolean(),
});
const hostArb: fc.Arbitrary<ShadowHostFeatures> = fc.record({
  pml: fc.boolean(),
  preemptionTimer: fc.boolean(),
  apicv: fc.boolean(),
});

/**
 * Runs L1's program and returns what L1 observed: every VMREAD result and the vmcs12 image at each
 * VMCLEAR. The processor running L1 consults the bitmaps; L0's emulation of intercepted VMREAD and
 * VMWRITE is reduced to what touches this module (kvm: handle_vmread, handle_vmwrite); the nested
 * VM entry copies vmcs12's guest state into vmcs02 the way KVM's dirty tracking allows (every
 * shadowed field each time, everything when vmcs12 is dirty).
 */
function observe(flags: Flags, host: ShadowHostFeatures, program: readonly Op[]): (bigint | string)[] {
  const m = machine(flags, { host });
  const { sync, vmcs12, vmcs02, shadow } = m;
  const seen: (bigint | string)[] = [];
  const shadowingActive = () =>
    sync.shadowingEnabled && (m.vmcs01.read(enc("SECONDARY_VM_EXEC_CONTROL")) & SHADOW_VMCS) !== 0;
  // Shadowed fields are consumed on every entry (vmcs_shadow_fields.h rule); CS/SS AR bytes were RW in v5.2.
  const everyEntry = [
    ...new Set([
      ...GUEST_FIELDS.filter((e) => sync.isShadowRw(e)),
      enc("GUEST_CS_AR_BYTES"),
      enc("GUEST_SS_AR_BYTES"),
    ]),
  ];

  sync.currentVmcsLoaded(vmcs12);
  sync.syncVmcs12ToShadow(vmcs12); // L1 about to run

  for (const op of program) {
    switch (op.kind) {
      case "write": {
        const value = fit(op.field, op.value);
        const lo = Number(value & 0xffffffffn);
        const hi = Number(value >> 32n);
        if (shadowingActive() && !sync.bitmaps.interceptsVmwrite(op.field)) {
          shadow.write(op.field, lo, hi); // the processor writes the shadow VMCS, no exit
          break;
        }
        // L0: handle_vmwrite
        if (!sync.isShadowRw(op.field)) sync.syncRareFieldsIfPending(vmcs12);
        vmcs12.write(op.field, lo, hi);
        if (!sync.isShadowRw(op.field)) {
          sync.writeThroughReadOnly(op.field, lo, hi);
          sync.markVmcs12Dirty();
        }
        break;
      }
      case "read": {
        if (shadowingActive() && !sync.bitmaps.interceptsVmread(op.field)) {
          seen.push(shadow.readBig(op.field));
          break;
        }
        // L0: handle_vmread
        if (sync.isRareField(op.field)) sync.syncRareFieldsIfPending(vmcs12);
        seen.push(vmcs12.readBig(op.field));
        break;
      }
      case "run": {
        sync.copyShadowToVmcs12(vmcs12); // nested_vmx_run
        switchTo(m, vmcs02);
        const copy = sync.dirtyVmcs12 ? GUEST_FIELDS : everyEntry;
        for (const e of copy) vmcs02.writeBig(e, vmcs12.readBig(e));
        sync.dirtyVmcs12 = false;
        for (const c of op.changes) vmcs02.writeBig(c.field, fit(c.field, c.value)); // L2 runs
        sync.syncVmcs02ToVmcs12(vmcs12, CR0_OWNED, CR4_OWNED);
        vmcs12.writeBig(enc("VM_EXIT_REASON"), BigInt(op.reason)); // prepare_vmcs12
        vmcs12.writeBig(enc("EXIT_QUALIFICATION"), op.qualification);
        switchTo(m, m.vmcs01);
        sync.requestVmcs12ToShadowSync();
        sync.syncVmcs12ToShadow(vmcs12); // L1 about to run
        break;
      }
      case "reload": {
        sync.currentVmcsReleased(vmcs12); // VMCLEAR of the current VMCS
        seen.push(Buffer.from(vmcs12.serialize()).toString("hex"));
        sync.currentVmcsLoaded(vmcs12); // VMPTRLD of the same VMCS
        sync.syncVmcs12ToShadow(vmcs12);
        break;
      }
    }
  }
  sync.currentVmcsReleased(vmcs12);
  seen.push(Buffer.from(vmcs12.serialize()).toString("hex"));
  return seen;
}

describe("ShadowVmcsSync: flags never change what L1 sees", () => {
  it("random L1 programs give the same VMREAD results and vmcs12 images under any flags", () => {
    fc.assert(
      fc.property(flagsArb, hostArb, fc.array(opArb, { maxLength: 40 }), (flags, host, program) => {
        expect(observe(flags, host, program)).toEqual(observe(ALL_OFF, host, program));
      }),
      { numRuns: 150 },
    );
  });

  it("a hand-written program exercising every path agrees across the extremes", () => {
    const program: Op[] = [
      { kind: "write", field: enc("GUEST_RIP"), value: 0x1000n },
      { kind: "write", field: enc("GUEST_CS_AR_BYTES"), value: 0xa09bn },
      { kind: "write", field: enc("VM_EXIT_REASON"), value: 7n },
      { kind: "read", field: enc("VM_EXIT_REASON") },
      {
        kind: "run",
        changes: [
          { field: enc("GUEST_TR_BASE"), value: 0xfffffe0000001000n },
          { field: enc("GUEST_RFLAGS"), value: 0x246n },
        ],
        reason: 10,
        qualification: 0n,
      },
      { kind: "read", field: enc("GUEST_RFLAGS") },
      { kind: "write", field: enc("GUEST_ES_SELECTOR"), value: 0x18n },
      { kind: "read", field: enc("GUEST_TR_BASE") },
      {
        kind: "run",
        changes: [{ field: enc("GUEST_GS_BASE"), value: 0x7f00n }],
        reason: 12,
        qualification: 3n,
      },
      { kind: "reload" },
      { kind: "read", field: enc("GUEST_GS_BASE") },
    ];
    const baseline = observe(ALL_OFF, { pml: true, preemptionTimer: true, apicv: true }, program);
    expect(baseline[0]).toBe(7n);
    expect(baseline[1]).toBe(0x246n);
    expect(baseline[2]).toBe(0xfffffe0000001000n);
    expect(baseline[4]).toBe(0x7f00n);
    expect(baseline).toHaveLength(6);
    expect(observe(ALL_ON, { pml: true, preemptionTimer: true, apicv: true }, program)).toEqual(baseline);
    expect(
      observe({ ...ALL_ON, shadowing: false }, { pml: false, preemptionTimer: false, apicv: true }, program),
    ).toEqual(observe(ALL_OFF, { pml: false, preemptionTimer: false, apicv: true }, program));
  });
});
