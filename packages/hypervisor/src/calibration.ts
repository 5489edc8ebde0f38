import type { CostEventName } from "./cost-catalogs";
import { type CostTable, cyclesOfNamed } from "./cost-table";

/**
 * The component facts a cost profile is calibrated against (DESIGN.md §5, reference/calibration.md):
 * published cycle counts of *one* piece of the exit path — a single-level exit round trip, or the
 * saving one seed patch reports — each with the event counts that make up that piece in the model
 * (its recipe). `checkCalibration` prices each recipe with a profile and tells whether it lands in
 * the published range.
 *
 * Composite figures (a whole nested round trip, a workload) are deliberately absent: they are what
 * the model predicts from these components, and fitting a profile to them would make the prediction
 * circular.
 */
export interface CalibrationFact {
  readonly id: string;
  /** What was measured. */
  readonly description: string;
  /** Where the number was published. */
  readonly source: string;
  /** calibration.md's rating: A measured with method, B measured, C order of magnitude. */
  readonly reliability: "A" | "B" | "C";
  /** The published range in cycles, inclusive, as read from the source. */
  readonly min: number;
  readonly max: number;
  /** How the range was read when the source gives one number or words ("about", "several hundred"). */
  readonly reading: string;
  /** The counted events that make up the measured piece of work. */
  readonly recipe: Readonly<Partial<Record<CostEventName, number>>>;
  /** Where the recipe's counts come from. */
  readonly recipeSource: string;
}

export const CALIBRATION_FACTS: readonly CalibrationFact[] = Object.freeze([
  {
    id: "single-level-cpuid-round-trip",
    description: "CPUID exit round trip of an L1 guest on KVM (kvm-unit-tests vmexit.flat `cpuid`)",
    source:
      "calibration.md §1: 1,018 → 1,027 pinned, 1,034 → 1,053 unpinned (Sean Christopherson, KVM list, " +
      "Message-ID <Z1r-Nh0JAQdL_L8n@google.com>, A); median 1,098 (1,087–1,110) over 100 runs (Bernhard Kauer, same mail, B)",
    reliability: "A",
    min: 1018,
    max: 1110,
    reading: "the union of the published CPUID round-trip figures",
    recipe: {
      HARDWARE_VM_EXIT: 1,
      EXIT_DISPATCH: 1,
      EXIT_HANDLER_CPUID: 1,
      VMREAD: 6,
      VMWRITE: 2,
      VMRESUME: 1,
      HARDWARE_VM_ENTRY: 1,
    },
    recipeSource:
      "one exit handled by L0: the VMREAD/VMWRITE counts are the low end of calibration.md §3's KVM figure " +
      "(6–10 VMREADs and 2–6 VMWRITEs per exit, intel/haxm PR #130, B); the runtime's own counts for a CPUID " +
      "exit replace them once it exists",
  },
  {
    id: "seed-000-mmu-reinit-per-nested-exit",
    description:
      "MMU re-initialisation avoided per nested round trip by split MMU contexts and role checks (seed 000)",
    source:
      "calibration.md §3: 'about 1000' cycles saved per nested vmexit (Vitaly Kuznetsov, [PATCH 0/9] " +
      "x86/kvm/nVMX: optimize MMU switch between L1 and L2, 2018, A)",
    reliability: "A",
    min: 800,
    max: 1200,
    reading: "'about 1000' read as ±20%",
    recipe: {
      CONTEXT_INIT: 3,
      PERMISSION_BITMASK_UPDATE: 3,
      PKRU_BITMASK_UPDATE: 2,
      GUEST_RSVD_MASK_RESET: 3,
      SHADOW_ZERO_MASK_RESET: 2,
    },
    recipeSource:
      "the mmu layer's steady-state round trip with flag (a) off minus the same with it on " +
      "(vcpu-mmu.nested.test.ts, kvm-mmu.md §7.1; L2 in long mode with CR4.PKE); the PGD lookups differ only in kind",
  },
  {
    id: "seed-003-vcpu-put-load-per-round-trip",
    description:
      "vCPU put/load and host-state reload avoided on the two vmcs01↔vmcs02 switches of a round trip (flag D)",
    source:
      "calibration.md §3: 'upwards of 1000' cycles per nested VM-entry (Sean Christopherson, [PATCH 00/15] " +
      "KVM: nVMX: Optimize nested VM-Entry, 7 May 2019, seed 003, A)",
    reliability: "A",
    min: 1000,
    max: 1500,
    reading: "'upwards of 1000' read as 1,000–1,500; kvm-vmx.md §10 flag D counts 2 switches per round trip",
    recipe: {
      VCPU_PUT: 2,
      VCPU_LOAD: 2,
      HOST_STATE_RELOAD: 2,
      RDMSR_DEBUGCTL: 2,
      RDPKRU: 2,
      PI_DESCRIPTOR_UPDATE: 2,
    },
    recipeSource:
      "kvm-vmx.md §10 flag D: one put + load + host-state reload + RDMSR DEBUGCTL + RDPKRU + PI update per switch",
  },
  {
    id: "seed-003-rare-guest-field-sync",
    description: "eager vmcs02→vmcs12 sync of the rarely used guest fields on a nested exit (flag C)",
    source:
      "calibration.md §3: ~200 cycles saved by 'Sync rarely accessed guest fields only when needed' (30+ VMREADs, A)",
    reliability: "A",
    min: 150,
    max: 250,
    reading: "'~200' read as ±25%",
    recipe: { VMREAD: 35, VMCS12_WRITE: 35 },
    recipeSource: "kvm-vmx.md §8: 35 rare fields, each one VMREAD of vmcs02 and one store into vmcs12",
  },
  {
    id: "seed-003-shadow-offset-lookups-per-direction",
    description: "runtime vmcs12 offset lookups of one shadow-VMCS copy direction (flag B)",
    source:
      "calibration.md §3: ~100 cycles per direction ([PATCH 3/7] KVM: nVMX: Track vmcs12 offsets for shadowed " +
      "VMCS fields, Message-ID <20190507153629.3681-4-sean.j.christopherson@intel.com>, A)",
    reliability: "A",
    min: 75,
    max: 125,
    reading: "'~100' read as ±25%",
    recipe: { SHADOW_FIELD_OFFSET_LOOKUP: 34 },
    recipeSource: "kvm-vmx.md §10 summary: 68 lookups per round trip before flag B, 34 per direction",
  },
  {
    id: "seed-003-full-consistency-check",
    description: "the full VM-entry consistency checks after a VMWRITE to a major VMCS control (flag F)",
    source:
      "calibration.md §3: 'several hundred cycles' (Sean Christopherson, [PATCH 00/13] KVM: VMX: Reduce " +
      "VMWRITEs to VMCS controls, seed 003, A, qualitative)",
    reliability: "A",
    min: 300,
    max: 500,
    reading: "calibration.md §5: 'several hundred' read as 300–500",
    recipe: { VMCS_FULL_CONSISTENCY_CHECK: 1 },
    recipeSource: "one event per VM entry that pays the full checks (kvm-vmx.md §10 flag F)",
  },
  {
    id: "seed-003-read-only-field-copies",
    description: "copying the 9 read-only shadow fields back to vmcs12 on every nested entry (flag A)",
    source:
      "Sean Christopherson, [PATCH 1/7] KVM: nVMX: Intercept VMWRITEs to read-only shadow VMCS fields, " +
      "7 May 2019 (seed 003): 'reduces the latency of nested VM-Entry (copy_shadow_to_vmcs12()) by ~100 " +
      "cycles'; not yet a row of calibration.md",
    reliability: "A",
    min: 75,
    max: 125,
    reading: "'~100' read as ±25%",
    recipe: { VMREAD: 9, SHADOW_FIELD_OFFSET_LOOKUP: 9, VMCS12_WRITE: 9 },
    recipeSource:
      "kvm-vmx.md §10 flag A: 9 RO fields on a 64-bit host; patch 1/7 precedes the offsets patch, so each copy " +
      "still did a runtime offset lookup",
  },
] satisfies readonly CalibrationFact[]);

/** One fact priced with a profile. */
export interface CalibrationCheck {
  readonly fact: CalibrationFact;
  /** The recipe's cycles under the profile. */
  readonly cycles: number;
  /** True when `cycles` lies within [fact.min, fact.max]. */
  readonly ok: boolean;
}

/** Prices every calibration fact's recipe with `table`. */
export function checkCalibration(
  table: CostTable,
  facts: readonly CalibrationFact[] = CALIBRATION_FACTS,
): readonly CalibrationCheck[] {
  return facts.map((fact) => {
    const cycles = cyclesOfNamed(fact.recipe as Readonly<Record<string, number>>, table);
    return { fact, cycles, ok: cycles >= fact.min && cycles <= fact.max };
  });
}
