import {
  VM_INSTRUCTION_ERROR as ERR,
  SECONDARY_EXEC_CTLS,
  type ShadowField,
  VMX_RESULT,
  vmcsEnumMsr,
} from "@nestvisor/vmx";
import { RFLAGS } from "@nestvisor/x86-arch";
import { hex } from "../case-recorder";
import type { CaseGroup, Suite, SuiteContext } from "../suite";
import { loadBaseline } from "./vmcs12-baseline";
import { STATUS_FLAGS } from "./vmx-case";
import { enc, L1, type VmxWorld, worldFor } from "./vmx-world";

const OK = VMX_RESULT.SUCCEED;
const VMREAD_EXIT = 23;
const VMWRITE_EXIT = 25;
const MAGIC = 0x5a5a_0000;

/**
 * kvm-unit-tests vmx_vmcs_shadow_test (vmx-tests.md §4): L1 gives L2 a shadow VMCS and VMREAD/
 * VMWRITE bitmaps; for every encoding and bitmap state, L2's VMREAD/VMWRITE either exits to L1 or is
 * served from the shadow VMCS (by L0's emulation on cached_shadow_vmcs12, as KVM does), with the
 * values and flags L1 itself gets from that shadow VMCS.
 */
function encodingsUnderTest(): number[] {
  const out: number[] = [];
  const last = vmcsEnumMsr(); // the raw IA32_VMX_VMCS_ENUM value: offsets 0..last
  for (let base = 0; base < 0x8000; base += 1 << 10)
    for (let offset = 0; offset <= last; offset++) out.push(base + offset);
  return out;
}

/** The 49 encodings with one bit set in 15..63 (held as [lo, hi]). */
function reservedEncodings(): [number, number][] {
  const out: [number, number][] = [];
  for (let bit = 15; bit < 64; bit++) out.push(bit < 32 ? [2 ** bit, 0] : [0, 2 ** (bit - 32)]);
  return out;
}

const BITMAP_STATES = [
  ["both intercepted", true, true],
  ["VMREAD let through, VMWRITE intercepted", false, true],
  ["VMREAD intercepted, VMWRITE let through", true, false],
  ["both let through", false, false],
] as const;

function setBit(w: VmxWorld, bitmap: number, field: number, on: boolean): void {
  if (field > 0x7fff) return;
  const at = bitmap + (field >>> 5) * 4;
  const word = w.memory.read32(at);
  const mask = 2 ** (field & 31);
  w.memory.write32(at, on ? (word | mask) >>> 0 : (word & ~mask) >>> 0);
}

/** What L1 finds in its shadow VMCS for `field` (VMPTRLD of the shadow, VMREAD, back to VMCS0). */
function readShadow(w: VmxWorld, lo: number, hi: number): { outcome: number; value: number; flags: number } {
  w.vmptrld(L1.SHADOW_VMCS);
  w.ctx.rflags = 0x2 | RFLAGS.CF | RFLAGS.ZF;
  const outcome = w.vmread(lo, hi);
  const flags = w.ctx.rflags & STATUS_FLAGS;
  const value = w.valueLo;
  w.vmptrld(L1.VMCS[0]);
  return { outcome, value, flags };
}

function writeShadow(w: VmxWorld, lo: number, hi: number, value: number): number {
  w.vmptrld(L1.SHADOW_VMCS);
  const r = w.vmwrite(lo, value, 0, hi);
  w.vmptrld(L1.VMCS[0]);
  return r;
}

function l2ShadowGroup(validLink: boolean): CaseGroup {
  const plain = encodingsUnderTest().map((e) => [e, 0] as [number, number]);
  const fields = [...plain, ...reservedEncodings()];
  return {
    id: `shadow-vmcs/l2-access-${validLink ? "valid-link" : "invalid-link"}`,
    description: `L2's VMREAD/VMWRITE of every encoding under L1's bitmaps, VMCS link pointer ${validLink ? "to the shadow VMCS" : "all ones"} (§4.1–4.6)`,
    cases: fields.length * BITMAP_STATES.length,
    run(rec, ctx) {
      const w = loadBaseline(worldFor(ctx));
      if (
        (w.emulator.capabilities.procbasedCtls2.hi & SECONDARY_EXEC_CTLS.SECONDARY_EXEC_SHADOW_VMCS) ===
        0
      ) {
        rec.skip("the model does not offer VMCS shadowing to L1");
        return;
      }
      // Set-up: bitmaps, the shadow VMCS (clear), shadowing on, the link pointer.
      for (let o = 0; o < 4096; o += 4) {
        w.memory.write32(L1.VMREAD_BITMAP + o, 0xffffffff);
        w.memory.write32(L1.VMWRITE_BITMAP + o, 0xffffffff);
      }
      const setup = [
        w.vmclear(L1.SHADOW_VMCS),
        w.vmptrld(L1.VMCS[0]),
        w.write("VMREAD_BITMAP", L1.VMREAD_BITMAP),
        w.write("VMWRITE_BITMAP", L1.VMWRITE_BITMAP),
        w.write("CPU_BASED_VM_EXEC_CONTROL", Number(w.read("CPU_BASED_VM_EXEC_CONTROL")) | 0x8000_0000),
        w.write("SECONDARY_VM_EXEC_CONTROL", SECONDARY_EXEC_CTLS.SECONDARY_EXEC_SHADOW_VMCS),
        w.write("VMCS_LINK_POINTER", validLink ? L1.SHADOW_VMCS : 0xffffffffffffffffn),
      ];
      if (setup.some((r) => r !== OK)) {
        rec.fail(`set-up failed: ${setup.join(", ")}`);
        return;
      }
      let launched = false;
      for (const [lo, hi] of fields) {
        const name = hi === 0 ? hex(lo) : `${hex(hi)}_${hex(lo).slice(2).padStart(8, "0")}`;
        for (const [state, readBit, writeBit] of BITMAP_STATES) {
          // L1 seeds the shadow with MAGIC + encoding and notes what its own VMREAD of it gives.
          const seeded = writeShadow(w, lo, hi, (MAGIC + lo) >>> 0) === OK;
          const l1 = readShadow(w, lo, hi);
          const good = seeded && l1.outcome === OK;
          setBit(w, L1.VMREAD_BITMAP, lo, readBit);
          setBit(w, L1.VMWRITE_BITMAP, lo, writeBit);
          const entry = launched ? w.vmresume() : w.vmlaunch();
          if (w.lastEntry?.kind !== "entered") {
            rec.fail(`${name}, ${state}: L1 could not enter L2 (${entry}, ${JSON.stringify(w.lastEntry)})`);
            return;
          }
          launched = true;
          w.l2ctx.rflags = 0x2 | RFLAGS.CF | RFLAGS.ZF;
          const wr = w.l2Access(true, lo, hi, 0, 0);
          w.l2ctx.rflags = 0x2 | RFLAGS.CF | RFLAGS.ZF;
          const rd = w.l2Access(false, lo, hi);
          const l2Flags = w.l2ctx.rflags & STATUS_FLAGS;
          const l2Value = w.valueLo;
          w.exitToL1(18);
          const problems: string[] = [];
          const outOfBitmap = hi !== 0 || lo > 0x7fff;
          const wExit = outOfBitmap || writeBit;
          const rExit = outOfBitmap || readBit;
          if (wExit !== (wr === "exit"))
            problems.push(
              `VMWRITE ${wr === "exit" ? "exited" : "did not exit"}, expected ${wExit ? `exit ${VMWRITE_EXIT}` : "no exit"}`,
            );
          if (rExit !== (rd === "exit"))
            problems.push(
              `VMREAD ${rd === "exit" ? "exited" : "did not exit"}, expected ${rExit ? `exit ${VMREAD_EXIT}` : "no exit"}`,
            );
          if (!validLink) {
            // §4.6: not intercepted with the link pointer all ones → VMfailInvalid.
            if (wr !== "exit" && wr !== VMX_RESULT.FAIL_INVALID)
              problems.push(`VMWRITE gave ${wr}, expected VMfailInvalid`);
            if (rd !== "exit" && rd !== VMX_RESULT.FAIL_INVALID)
              problems.push(`VMREAD gave ${rd}, expected VMfailInvalid`);
          } else {
            const wroteZero = wr !== "exit" && good;
            if (wr !== "exit") {
              const want = good ? OK : ERR.UNSUPPORTED_VMCS_COMPONENT;
              if (wr !== want && !(good && wr === ERR.VMWRITE_READ_ONLY_COMPONENT))
                problems.push(`VMWRITE gave ${wr}, expected ${want}`);
            }
            if (rd !== "exit") {
              if (l2Flags !== l1.flags)
                problems.push(
                  `L2's VMREAD left flags ${hex(l2Flags)}, L1's VMREAD of the shadow ${hex(l1.flags)}`,
                );
              if (good) {
                const want = wroteZero ? 0 : l1.value;
                if (rd !== OK || l2Value !== want)
                  problems.push(
                    `L2's VMREAD gave ${rd} / ${hex(l2Value)}, expected the shadow's ${hex(want)}`,
                  );
              } else if (rd !== ERR.UNSUPPORTED_VMCS_COMPONENT)
                problems.push(`VMREAD gave ${rd}, expected error 12`);
            }
            if (wroteZero) {
              const after = readShadow(w, lo, hi);
              if (after.outcome !== OK || after.value !== 0)
                problems.push(`L1 finds ${hex(after.value)} in the shadow after L2 wrote 0`);
            }
            if (!good && (wr !== "exit" || rd !== "exit")) {
              const err = w.vmcs12.read(enc("VM_INSTRUCTION_ERROR"));
              if (err !== 12) problems.push(`L1's VM-instruction error is ${err}, expected 12`);
            }
          }
          if (problems.length === 0) rec.pass();
          else rec.fail(`${name}, ${state}: ${problems.join("; ")}`);
        }
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// L0's own shadowing of L1 (seed 003): the shadow VMCS and vmcs12 stay coherent per field.

function fieldValue(f: ShadowField): { lo: number; hi: number } {
  const lo = (0x4200_0000 | (f.encoding << 4) | 0x5) >>> 0;
  switch (f.width) {
    case 0:
      return { lo: lo & 0xffff, hi: 0 };
    case 2:
      return { lo, hi: 0 };
    default:
      return { lo, hi: 0x1234 };
  }
}

function sameValue(f: ShadowField, lo: number, hi: number, want: { lo: number; hi: number }): boolean {
  if (lo === want.lo && hi === want.hi) return true;
  return /_AR_BYTES$/.test(f.name) && hi === 0 && lo === (want.lo & 0x1f0ff);
}

function coherenceGroup(ctx: SuiteContext): CaseGroup {
  const probe = worldFor(ctx);
  const lists = probe.sync.fields;
  const fields = [
    ...lists.rwCopy.map((f) => [f, "RW"] as const),
    ...lists.roCopy.map((f) => [f, "RO"] as const),
  ];
  return {
    id: "shadow-vmcs/l1-coherence",
    description:
      "L0's shadow VMCS for L1 (seed 003): every shadowed field L1 writes reads back, through the shadow and after VMPTRLD flushes it to vmcs12 (the model's ShadowVmcsSync)",
    cases: fields.length,
    ...(ctx.flags.shadowVmcs ? {} : { skip: "shadowVmcs=off: L0 does not shadow L1's VMCS" }),
    run(rec, c) {
      const w = worldFor(c);
      w.enterVmxWithCurrent(L1.VMCS[0]);
      for (const [f, kind] of fields) {
        const v = fieldValue(f);
        const problems: string[] = [];
        const r = w.vmwrite(f.encoding, v.lo, v.hi);
        if (r !== OK) problems.push(`L1's VMWRITE gave ${r}`);
        if (kind === "RW" && !w.servedByShadow)
          problems.push("the VMWRITE of a shadow-RW field exited (VMWRITE bitmap bit set)");
        if (w.vmread(f.encoding) !== OK || !sameValue(f, w.valueLo, w.valueHi, v)) {
          problems.push(
            `L1 reads back ${hex(w.valueHi)}_${hex(w.valueLo).slice(2)}${w.servedByShadow ? " from the shadow" : ""}, wrote ${hex(v.hi)}_${hex(v.lo).slice(2)}${kind === "RO" ? " (kvm: handle_vmwrite writes a read-only shadow field through to the shadow VMCS)" : ""}`,
          );
        }
        // Releasing the VMCS flushes the shadow into vmcs12 and vmcs12 to memory (kvm: nested_release_vmcs12).
        w.vmptrld(L1.VMCS[1]);
        w.vmptrld(L1.VMCS[0]);
        if (w.vmread(f.encoding) !== OK || !sameValue(f, w.valueLo, w.valueHi, v)) {
          problems.push(
            `after VMPTRLD away and back L1 reads ${hex(w.valueHi)}_${hex(w.valueLo).slice(2)} (kvm: copy_shadow_to_vmcs12 on release)`,
          );
        }
        if (problems.length === 0) rec.pass();
        else rec.fail(`${f.name} (${kind}): ${problems.join("; ")}`);
      }
    },
  };
}

/** The `shadow-vmcs` suite (vmx-tests.md §4, and L0's shadowing of L1). */
export const SHADOW_VMCS_SUITE: Suite = {
  name: "shadow-vmcs",
  description:
    "kvm-unit-tests vmx_vmcs_shadow_test (vmx-tests.md §4) and the coherence of L0's shadow VMCS for L1",
  groups(ctx) {
    return [l2ShadowGroup(true), l2ShadowGroup(false), coherenceGroup(ctx)];
  },
};
