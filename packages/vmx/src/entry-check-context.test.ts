import { cpuFeatures, DenseMemory, EFER } from "@nestvisor/x86-arch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { KVM_DEFAULT_VMX_CAPABILITIES } from "./capability-msrs";
import { CPU_BASED_CTLS, SECONDARY_EXEC_CTLS } from "./controls";
import {
  DEFAULT_L0_HOST_FACTS,
  DEFAULT_L1_VCPU_FACTS,
  ENTRY_FIELD,
  EntryCheckContext,
  GUEST_SEGMENT,
  guestSegmentFields,
  isBacked,
  isCanonical,
  isLegalAlignedGpa,
  isLegalGpa,
  isValidPat,
  l0HostFacts,
  l1VcpuFacts,
  validEferMask,
} from "./entry-check-context";
import { fieldByName } from "./field-catalog";
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
