/**
 * fast-check arbitraries of valid workload documents (test helper). The setup is fixed: 4-level
 * paging, 16 MiB, one identity-mapped address space "identity", so that every generated access is
 * mapped, and every literal CR3 points into the 16 MiB of RAM. Loops nest up to three deep with small counts, so a program runs at most a few thousand
 * operations. Every loop body starts with a non-loop step, so no loop body runs empty.
 */
import { CR0, CR4, CR4_HI } from "@nestvisor/x86-arch";
import fc from "fast-check";
import type { StepSpec, WorkloadSpec } from "../workload-spec";

const MEMORY = 16 * 2 ** 20;
const TWO_64 = 2n ** 64n;

const sizeArb = fc.constantFrom<1 | 2 | 4 | 8>(1, 2, 4, 8);
const u32 = fc.nat({ max: 0xffffffff });
const u64 = fc.oneof(fc.bigInt({ min: 0n, max: TWO_64 - 1n }), fc.nat({ max: Number.MAX_SAFE_INTEGER }));

/** A memory access inside [0, 16 MiB): aligned, and with a stride only inside a loop of `count`. */
function memoryArb(innerCount: number | undefined) {
  return fc
    .record({
      size: sizeArb,
      slot: fc.nat({ max: MEMORY / 2 / 8 - 1 }),
      strideUnits: innerCount === undefined ? fc.constant(0) : fc.nat({ max: 512 }),
      value: u64,
    })
    .map(({ size, slot, strideUnits, value }) => {
      const gva = slot * 8;
      const stride = strideUnits * size;
      const bounded =
        typeof value === "bigint" ? value % (1n << BigInt(8 * size)) : value % 2 ** Math.min(8 * size, 52);
      return { gva, size, stride, value: bounded };
    });
}

const cr0Arb = fc
  .subarray([CR0.MP, CR0.EM, CR0.TS, CR0.NE, CR0.WP, CR0.AM, CR0.CD])
  .map((bits) => bits.reduce((v, b) => (v | b) >>> 0, (CR0.PE | CR0.ET | CR0.PG) >>> 0));

const cr4Arb = fc
  .record({
    bits: fc.subarray([CR4.PGE, CR4.OSFXSR, CR4.OSXMMEXCPT, CR4.SMEP, CR4.SMAP, CR4.FSGSBASE, CR4.OSXSAVE]),
    fred: fc.boolean(),
  })
  .map(({ bits, fred }) => bits.reduce((v, b) => v | b, CR4.PAE) + (fred ? CR4_HI.FRED * 2 ** 32 : 0));

const msrArb = fc.oneof(
  u32,
  fc.constantFrom("IA32_TSC_ADJUST", "IA32_KERNEL_GS_BASE", "IA32_EFER", "TSC_DEADLINE"),
);

const ioArb = fc.constantFrom<1 | 2 | 4>(1, 2, 4).chain((size) =>
  fc.record({
    port: fc.nat({ max: 0x10000 - size }),
    size: fc.constant(size),
    value: fc.nat({ max: 2 ** (8 * size) - 1 }),
  }),
);

/** A step that is not a loop; strided accesses only when `innerCount` (the innermost loop's count) is known. */
function leafStepArb(innerCount: number | undefined): fc.Arbitrary<StepSpec> {
  return fc.oneof(
    memoryArb(innerCount).map(({ gva, size, stride }) => ({
      read: stride === 0 ? { gva, size } : { gva, size, stride },
    })),
    memoryArb(innerCount).map(({ gva, size, stride, value }) => ({ write: { gva, size, value, stride } })),
    memoryArb(innerCount).map(({ gva, size }) => ({ fetch: { gva, size } })),
    fc.record({ leaf: u32, subleaf: u32 }).map((cpuid) => ({ cpuid })),
    u32.map((nr) => ({ vmcall: { nr } })),
    cr0Arb.map((value) => ({ movToCr0: { value } })),
    cr4Arb.map((value) => ({ movToCr4: { value } })),
    fc
      .oneof(
        // A literal CR3 whose PML4 table is in the guest's RAM: loaders refuse one beyond
        // MAXPHYADDR or outside guest memory (workload-cr3-check.ts). Low bits: PWT, PCD, ignored.
        fc.bigInt({ min: 0n, max: BigInt(MEMORY - 1) }).map((value) => ({ value })),
        fc.constantFrom({ space: "identity" }, { space: 0 }, { reload: true }),
      )
      .map((movToCr3) => ({ movToCr3 })),
    fc.constantFrom<StepSpec>({ movFromCr0: {} }, { movFromCr3: {} }, { movFromCr4: {} }, { hlt: {} }),
    fc.record({ msr: msrArb, value: u64 }).map((wrmsr) => ({ wrmsr })),
    msrArb.map((msr) => ({ rdmsr: { msr } })),
    u64.map((gva) => ({ invlpg: { gva } })),
    ioArb.map(({ port, size }) => ({ in: { port, size } })),
    ioArb.map((out) => ({ out })),
    fc.nat({ max: Number.MAX_SAFE_INTEGER }).map((cycles) => ({ compute: { cycles } })),
    fc.string({ minLength: 1, maxLength: 16 }).map((label) => ({ iteration: { label } })),
  );
}

function stepsArb(depth: number, innerCount: number | undefined): fc.Arbitrary<StepSpec[]> {
  const leaf = leafStepArb(innerCount);
  if (depth >= 3) return fc.array(leaf, { minLength: 1, maxLength: 4 });
  const loop: fc.Arbitrary<StepSpec> = fc
    .nat({ max: 4 })
    .chain((count) =>
      fc
        .tuple(leafStepArb(count), stepsArb(depth + 1, count))
        .map(([first, rest]) => ({ loop: { count, steps: [first, ...rest] } })),
    );
  return fc.array(fc.oneof({ weight: 3, arbitrary: leaf }, { weight: 1, arbitrary: loop }), {
    minLength: 1,
    maxLength: 5,
  });
}

/** A valid workload document. */
export const workloadSpecArb: fc.Arbitrary<WorkloadSpec> = fc
  .record({
    name: fc.stringMatching(/^[A-Za-z0-9_.+-]{1,20}$/),
    description: fc.string({ maxLength: 40 }),
    level: fc.constantFrom<1 | 2 | 3>(1, 2, 3),
    cpl: fc.constantFrom<0 | 3>(0, 3),
    steps: stepsArb(0, undefined),
  })
  .map(({ name, description, level, cpl, steps }) => ({
    name,
    description,
    setup: { level, cpl, paging: "4-level" as const, memory: "16MiB" },
    steps: [{ iteration: { label: "start" } } as StepSpec, ...steps],
  }));
