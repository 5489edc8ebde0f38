import { cpuFeatures, DenseMemory, EFER } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { KVM_DEFAULT_VMX_CAPABILITIES } from "./capability-msrs";
import { CPU_BASED_CTLS, SECONDARY_EXEC_CTLS } from "./controls";
import {
  DEFAULT_L0_HOST_FACTS,
  DEFAULT_L1_VCPU_FACTS,
  ENTRY_CHECK_SLOT_COUNT,
  ENTRY_FIELD,
  EntryCheckContext,
  entryCheckSlot,
  GUEST_SEGMENT,
  guestSegmentFields,
  isBacked,
  isCanonical,
  isLegalAlignedGpa,
  isLegalGpa,
  isValidPat,
  l0HostFacts,
  l1VcpuFacts,
  type Vmcs12Reader,
  validEferMask,
} from "./entry-check-context";
import { EntryCheckDependencies } from "./entry-check-dependencies";
import { fieldByName } from "./field-catalog";
import { asGenericReader } from "./testing/generic-reader";
import { Vmcs12 } from "./vmcs12";

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const halves = (v: bigint) => [Number(v & 0xffffffffn), Number(v >> 32n)] as const;

describe("address helpers", () => {
  it("isLegalGpa: no bit at or above MAXPHYADDR (BigInt oracle)", () => {
    fc.assert(
      fc.property(u64, fc.integer({ min: 32, max: 52 }), (v, maxPhys) => {
        expect(isLegalGpa(halves(v)[1], maxPhys)).toBe(v >> BigInt(maxPhys) === 0n);
      }),
    );
  });

  it("isLegalAlignedGpa: aligned and legal (BigInt oracle)", () => {
    fc.assert(
      fc.property(u64, fc.constantFrom(16, 64, 4096), (v, alignment) => {
        const [lo, hi] = halves(v);
        const expected = v % BigInt(alignment) === 0n && v >> 46n === 0n;
        expect(isLegalAlignedGpa(lo, hi, alignment, 46)).toBe(expected);
      }),
    );
  });

  it("isCanonical: bits 63:N-1 all equal (BigInt oracle)", () => {
    fc.assert(
      fc.property(u64, fc.constantFrom(48, 57), (v, bits) => {
        const top = v >> BigInt(bits - 1);
        const all = (1n << BigInt(65 - bits)) - 1n;
        expect(isCanonical(halves(v)[1], bits)).toBe(top === 0n || top === all);
      }),
    );
    expect(isCanonical(0xffff8000, 48)).toBe(true);
    expect(isCanonical(0x00008000, 48)).toBe(false);
    expect(isCanonical(0xff555555, 57)).toBe(true);
    expect(isCanonical(0xff555555, 48)).toBe(false);
  });

  it("isBacked: the whole range inside the memory", () => {
    const memory = new DenseMemory(0x10000);
    expect(isBacked(memory, 0xf000, 0, 4096)).toBe(true);
    expect(isBacked(memory, 0xf001, 0, 4096)).toBe(false);
    expect(isBacked(memory, 0, 1, 16)).toBe(false);
    expect(isBacked(memory, 0, 0x100000, 16)).toBe(false);
  });
});

describe("isValidPat", () => {
  it("accepts exactly the memory types 0, 1, 4, 5, 6, 7 in every byte (BigInt oracle)", () => {
    const byte = fc.integer({ min: 0, max: 255 });
    fc.assert(
      fc.property(fc.array(byte, { minLength: 8, maxLength: 8 }), (bytes) => {
        const value = bytes.reduce((acc, b, i) => acc | (BigInt(b) << BigInt(8 * i)), 0n);
        const [lo, hi] = halves(value);
        expect(isValidPat(lo, hi)).toBe(bytes.every((b) => [0, 1, 4, 5, 6, 7].includes(b)));
      }),
    );
    expect(isValidPat(0x00070406, 0x00070406)).toBe(true);
  });
});

describe("validEferMask", () => {
  it("allows SCE always, LME/LMA with long mode, NXE with NX", () => {
    expect(validEferMask(cpuFeatures())).toBe(EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE);
    expect(validEferMask(cpuFeatures({ lm: false, nx: false }))).toBe(EFER.SCE);
  });
});

describe("facts", () => {
  it("defaults describe a 64-bit L1 whose CR4 the default capabilities accept", () => {
    expect(DEFAULT_L1_VCPU_FACTS.efer & EFER.LMA).not.toBe(0);
    expect(DEFAULT_L1_VCPU_FACTS.cr4 & DEFAULT_L1_VCPU_FACTS.cr4ReservedLo).toBe(0);
    expect(DEFAULT_L1_VCPU_FACTS.cr4 & ~KVM_DEFAULT_VMX_CAPABILITIES.cr4Fixed1.lo).toBe(0);
    expect(DEFAULT_L0_HOST_FACTS.unrestrictedGuest).toBe(true);
  });

  it("the default host uses virtual NMIs (enable_vnmi) and has neither RTM nor SGX", () => {
    expect(DEFAULT_L0_HOST_FACTS).toMatchObject({ virtualNmis: true, rtm: false, sgx: false });
    expect(l0HostFacts({ sgx: true }).virtualNmis).toBe(true);
  });

  it("builders override and freeze", () => {
    const vcpu = l1VcpuFacts({ lam: true });
    expect(vcpu.lam).toBe(true);
    expect(vcpu.efer).toBe(DEFAULT_L1_VCPU_FACTS.efer);
    expect(Object.isFrozen(vcpu)).toBe(true);
    expect(l0HostFacts({ la57: false }).la57).toBe(false);
  });
});

describe("EntryCheckContext", () => {
  const write = (vmcs12: Vmcs12, name: string, value: number) =>
    vmcs12.write(fieldByName(name)!.encoding, value);
  const input = (vmcs12: Vmcs12) => ({
    vmcs12,
    caps: KVM_DEFAULT_VMX_CAPABILITIES,
    vcpu: DEFAULT_L1_VCPU_FACTS,
    host: DEFAULT_L0_HOST_FACTS,
    memory: new DenseMemory(4096),
  });

  it("reads the controls once; secondary controls count only when activated (nested_cpu_has2)", () => {
    const vmcs12 = new Vmcs12();
    write(vmcs12, "SECONDARY_VM_EXEC_CONTROL", SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_EPT);
    const ctx = new EntryCheckContext().reset(input(vmcs12));
    expect(ctx.procRaw2).toBe(SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_EPT);
    expect(ctx.has2(SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_EPT)).toBe(false);
    write(vmcs12, "CPU_BASED_VM_EXEC_CONTROL", CPU_BASED_CTLS.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
    ctx.reset(input(vmcs12));
    expect(ctx.proc).toBe(CPU_BASED_CTLS.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
    expect(ctx.has2(SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_EPT)).toBe(true);
  });

  it("reads 64-bit fields as halves and unsigned", () => {
    const vmcs12 = new Vmcs12();
    vmcs12.writeBig(ENTRY_FIELD.GUEST_RIP, 0xffffffff81000000n);
    const ctx = new EntryCheckContext().reset(input(vmcs12));
    expect(ctx.read(ENTRY_FIELD.GUEST_RIP)).toBe(0x81000000);
    expect(ctx.hi).toBe(0xffffffff);
    expect(ctx.read(ENTRY_FIELD.PIN)).toBe(0);
    expect(ctx.hi).toBe(0);
  });

  it("caches a field within one entry and re-reads it after reset", () => {
    const vmcs12 = new Vmcs12();
    vmcs12.writeBig(ENTRY_FIELD.GUEST_CR3, 0x1234000n);
    const ctx = new EntryCheckContext().reset(input(vmcs12));
    expect(ctx.read(ENTRY_FIELD.GUEST_CR3)).toBe(0x1234000);
    vmcs12.writeBig(ENTRY_FIELD.GUEST_CR3, 0x5000000000n);
    // vmcs12 does not change during a check, so the first value is served from the cache...
    expect(ctx.read(ENTRY_FIELD.GUEST_CR3)).toBe(0x1234000);
    expect(ctx.hi).toBe(0);
    // ...and the next entry reads it again.
    ctx.reset(input(vmcs12));
    expect(ctx.read(ENTRY_FIELD.GUEST_CR3)).toBe(0);
    expect(ctx.hi).toBe(0x50);
  });

  it("reads a field the vmcs12 era lacks as 0", () => {
    const ctx = new EntryCheckContext().reset(input(new Vmcs12("v5.3")));
    expect(ctx.read(ENTRY_FIELD.TSC_MULTIPLIER)).toBe(0);
  });

  it("reads guest segments by index", () => {
    const vmcs12 = new Vmcs12();
    const tr = guestSegmentFields(GUEST_SEGMENT.TR);
    vmcs12.write(tr.selector, 0x40);
    vmcs12.write(tr.ar, 0x8b);
    vmcs12.write(tr.limit, 0x67);
    vmcs12.writeBig(tr.base, 0xfffffe0000003000n);
    const ctx = new EntryCheckContext().reset(input(vmcs12));
    expect(ctx.guestSelector(GUEST_SEGMENT.TR)).toBe(0x40);
    expect(ctx.guestAr(GUEST_SEGMENT.TR)).toBe(0x8b);
    expect(ctx.guestLimit(GUEST_SEGMENT.TR)).toBe(0x67);
    expect(ctx.guestBase(GUEST_SEGMENT.TR)).toBe(0x3000);
    expect(ctx.hi).toBe(0xfffffe00);
  });

  it("page-address checks use L1's MAXPHYADDR; canonical width follows the host's LA57", () => {
    const vmcs12 = new Vmcs12();
    vmcs12.writeBig(ENTRY_FIELD.MSR_BITMAP, 1n << 40n);
    const ctx = new EntryCheckContext().reset(input(vmcs12));
    expect(ctx.pageAddressValid(ENTRY_FIELD.MSR_BITMAP)).toBe(true);
    ctx.reset({ ...input(vmcs12), vcpu: l1VcpuFacts({ cpu: cpuFeatures({ maxPhysAddr: 39 }) }) });
    expect(ctx.maxPhysAddr).toBe(39);
    expect(ctx.pageAddressValid(ENTRY_FIELD.MSR_BITMAP)).toBe(false);
    expect(ctx.staticCanonicalBits).toBe(57);
    ctx.reset({ ...input(vmcs12), host: l0HostFacts({ la57: false }) });
    expect(ctx.staticCanonicalBits).toBe(48);
  });
});

describe("EntryCheckContext dependency tracking", () => {
  const slot = (name: string) => entryCheckSlot(fieldByName(name)!.encoding);
  const effectiveProc2Slot = ENTRY_CHECK_SLOT_COUNT - 1;
  const setup = (vmcs12: Vmcs12Reader = new Vmcs12(), memory = new DenseMemory(0x2000)) => {
    const deps = new EntryCheckDependencies(4, ENTRY_CHECK_SLOT_COUNT);
    const ctx = new EntryCheckContext().track(deps);
    ctx.reset({
      vmcs12,
      caps: KVM_DEFAULT_VMX_CAPABILITIES,
      vcpu: DEFAULT_L1_VCPU_FACTS,
      host: DEFAULT_L0_HOST_FACTS,
      memory,
    });
    return { deps, ctx };
  };
  const changedSlots = (set: Uint32Array) => {
    const out: number[] = [];
    for (let s = 0; s < ENTRY_CHECK_SLOT_COUNT; s++) if ((set[s >>> 5]! & (1 << (s & 31))) !== 0) out.push(s);
    return out;
  };

  it("gives every field the checks read a slot; other fields have none", () => {
    for (const encoding of Object.values(ENTRY_FIELD))
      expect(entryCheckSlot(encoding)).toBeGreaterThanOrEqual(0);
    expect(slot("GUEST_RSP")).toBe(-1);
    expect(entryCheckSlot(0x12345)).toBe(-1);
  });

  it("records the slots each rule reads, control words and has2 included", () => {
    const { deps, ctx } = setup();
    ctx.enterRule(0);
    ctx.read(ENTRY_FIELD.GUEST_CR0);
    void ctx.pin;
    ctx.enterRule(1);
    ctx.has2(SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_EPT);
    ctx.guestAr(GUEST_SEGMENT.CS);
    ctx.enterRule(2);
    void ctx.proc;
    void ctx.procRaw2;
    void ctx.exit;
    void ctx.entry;
    expect(deps.slotsOf(0)).toEqual(
      [slot("PIN_BASED_VM_EXEC_CONTROL"), slot("GUEST_CR0")].sort((a, b) => a - b),
    );
    expect(deps.slotsOf(1)).toEqual([slot("GUEST_CS_AR_BYTES"), effectiveProc2Slot]);
    expect(deps.slotsOf(2)).toEqual(
      [
        slot("CPU_BASED_VM_EXEC_CONTROL"),
        slot("SECONDARY_VM_EXEC_CONTROL"),
        slot("VM_EXIT_CONTROLS"),
        slot("VM_ENTRY_CONTROLS"),
      ].sort((a, b) => a - b),
    );
    for (const rule of [0, 1, 2]) expect(deps.isOpaque(rule)).toBe(false);
  });

  it("marks a rule opaque when it reads guest memory, writes an MSR or reads a field without a slot", () => {
    const memory = new DenseMemory(0x2000);
    memory.write32(0x100, 0xabcd);
    memory.write8(0x200, 0x5a);
    const { deps, ctx } = setup(new Vmcs12(), memory);
    ctx.enterRule(0);
    expect(ctx.readGuest32(0x100)).toBe(0xabcd);
    ctx.enterRule(1);
    expect(ctx.readGuest8(0x200)).toBe(0x5a);
    ctx.enterRule(2);
    expect(ctx.setMsr(0x10, 1, 0)).toBe(true);
    ctx.enterRule(3);
    ctx.read(fieldByName("GUEST_RSP")!.encoding);
    for (const rule of [0, 1, 2, 3]) expect(deps.isOpaque(rule)).toBe(true);
    // Running again clears the mark until the rule does it again.
    ctx.enterRule(0);
    ctx.read(ENTRY_FIELD.GUEST_CR0);
    expect(deps.isOpaque(0)).toBe(false);
  });

  it("setMsr goes through writeMsr when there is one", () => {
    const { ctx } = setup();
    const writes: number[][] = [];
    ctx.writeMsr = (index, lo, hi) => {
      writes.push([index, lo, hi]);
      return index !== 0x1234;
    };
    ctx.enterRule(0);
    expect(ctx.setMsr(0x10, 5, 6)).toBe(true);
    expect(ctx.setMsr(0x1234, 7, 8)).toBe(false);
    expect(writes).toEqual([
      [0x10, 5, 6],
      [0x1234, 7, 8],
    ]);
  });

  it("reads outside a rule are cached but attributed to no rule", () => {
    const { deps, ctx } = setup();
    ctx.read(ENTRY_FIELD.GUEST_CR0);
    for (let rule = 0; rule < 4; rule++) expect(deps.slotsOf(rule)).toEqual([]);
    // The controls, read by reset, and the field are in the union refresh re-validates.
    expect(deps.unionSlots()).toContain(slot("GUEST_CR0"));
    expect(deps.unionSlots()).toContain(slot("PIN_BASED_VM_EXEC_CONTROL"));
  });

  it("refresh reports exactly the cached fields that changed, 64-bit halves included", () => {
    const vmcs12 = new Vmcs12();
    vmcs12.writeBig(ENTRY_FIELD.GUEST_RIP, 0xffffffff81000000n);
    const { ctx } = setup(vmcs12);
    const changed = new Uint32Array(4);
    ctx.read(ENTRY_FIELD.GUEST_RIP);
    ctx.read(ENTRY_FIELD.GUEST_CR0);
    ctx.read(fieldByName("HOST_ES_SELECTOR")!.encoding);
    expect(ctx.refresh(changed)).toBe(false);
    vmcs12.writeBig(ENTRY_FIELD.GUEST_RIP, 0xfffffffe81000000n);
    // A field nobody read, and an unread 16-bit field sharing a word with a read one, do not count.
    vmcs12.writeBig(ENTRY_FIELD.GUEST_CR4, 0x20n);
    vmcs12.write(fieldByName("GUEST_INTR_STATUS")!.encoding, 0x3131);
    expect(ctx.refresh(changed)).toBe(true);
    expect(changedSlots(changed)).toEqual([slot("GUEST_RIP")]);
    // The cache now serves the new value, and the next refresh sees no change.
    expect(ctx.read(ENTRY_FIELD.GUEST_RIP)).toBe(0x81000000);
    expect(ctx.hi).toBe(0xfffffffe);
    expect(ctx.refresh(changed)).toBe(false);
    vmcs12.write(fieldByName("HOST_ES_SELECTOR")!.encoding, 0x18);
    expect(ctx.refresh(changed)).toBe(true);
    expect(changedSlots(changed)).toEqual([slot("HOST_ES_SELECTOR")]);
  });

  it("refresh reports the effective secondary controls when activation flips", () => {
    const vmcs12 = new Vmcs12();
    vmcs12.write(ENTRY_FIELD.PROC2, SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_EPT);
    const { ctx } = setup(vmcs12);
    const changed = new Uint32Array(4);
    expect(ctx.has2(SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_EPT)).toBe(false);
    vmcs12.write(ENTRY_FIELD.PROC, CPU_BASED_CTLS.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
    expect(ctx.refresh(changed)).toBe(true);
    expect(changedSlots(changed)).toEqual([slot("CPU_BASED_VM_EXEC_CONTROL"), effectiveProc2Slot]);
    expect(ctx.has2(SECONDARY_EXEC_CTLS.SECONDARY_EXEC_ENABLE_EPT)).toBe(true);
  });

  it("refresh works through any Vmcs12Reader, and matches a fresh read (property)", () => {
    const names = [
      "GUEST_RIP",
      "GUEST_CR0",
      "HOST_CS_SELECTOR",
      "VM_ENTRY_CONTROLS",
      "GUEST_TR_BASE",
      "TSC_MULTIPLIER",
    ];
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(fc.tuple(fc.constantFrom(...names), u64), { maxLength: 6 }),
        (generic, writes) => {
          const vmcs12 = new Vmcs12();
          const reader: Vmcs12Reader = generic ? asGenericReader(vmcs12) : vmcs12;
          const { ctx } = setup(reader);
          for (const name of names) ctx.read(fieldByName(name)!.encoding);
          const before = names.map((name) => vmcs12.readBig(fieldByName(name)!.encoding));
          for (const [name, value] of writes) vmcs12.writeBig(fieldByName(name)!.encoding, value);
          const changed = new Uint32Array(4);
          ctx.refresh(changed);
          const reported = changedSlots(changed).filter((s) => s !== effectiveProc2Slot);
          const expected = names
            .filter((name, i) => vmcs12.readBig(fieldByName(name)!.encoding) !== before[i])
            .map(slot)
            .sort((a, b) => a - b);
          expect(reported).toEqual(expected);
          for (const name of names) {
            const value = vmcs12.readBig(fieldByName(name)!.encoding);
            const [lo, hi] = halves(value);
            expect(ctx.read(fieldByName(name)!.encoding)).toBe(lo);
            expect(ctx.hi).toBe(hi);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("refresh needs a tracked context", () => {
    const ctx = new EntryCheckContext();
    expect(() => ctx.refresh(new Uint32Array(4))).toThrow();
  });
});
