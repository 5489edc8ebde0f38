import { formatVmxOutcome, type VmxOutcome } from "@nestvisor/vmx";
import { RFLAGS } from "@nestvisor/x86-arch";
import type { CaseGroup, SuiteContext } from "../suite";
import { type VmxWorld, worldFor } from "./vmx-world";

/** One case on a fresh L1 world: null when it holds, else what went wrong. */
export interface VmxCase {
  readonly name: string;
  run(world: VmxWorld, ctx: SuiteContext): string | null;
}

export function vmxCase(name: string, run: (world: VmxWorld, ctx: SuiteContext) => string | null): VmxCase {
  return { name, run };
}

/** A group of cases, each on its own world built from the model's parts and the run's flags. */
export function vmxGroup(id: string, description: string, cases: readonly VmxCase[]): CaseGroup {
  return {
    id,
    description,
    cases: cases.length,
    run(rec, ctx) {
      for (const c of cases) {
        let failure: string | null;
        try {
          failure = c.run(worldFor(ctx), ctx);
        } catch (error) {
          failure = `threw ${(error as Error).name}: ${(error as Error).message}`;
        }
        if (failure === null) rec.pass();
        else rec.fail(`${c.name}: ${failure}`);
      }
    },
  };
}

/** Compares an outcome with the expected one. */
export function expectOutcome(got: VmxOutcome, want: VmxOutcome, what = ""): string | null {
  if (got === want) return null;
  return `${what === "" ? "" : `${what}: `}${formatVmxOutcome(got)}, expected ${formatVmxOutcome(want)}`;
}

/** Runs checks in order and returns the first failure. */
export function first(...checks: (() => string | null)[]): string | null {
  for (const check of checks) {
    const failure = check();
    if (failure !== null) return failure;
  }
  return null;
}

/** The six status flags a VMX instruction defines (SDM 31.2). */
export const STATUS_FLAGS = RFLAGS.CF | RFLAGS.PF | RFLAGS.AF | RFLAGS.ZF | RFLAGS.SF | RFLAGS.OF;
/** kvm-unit-tests forces CF = ZF = 1 (and more) before each instruction; bit 1 and IF here. */
export const FLAGS_BEFORE = 0x202 | RFLAGS.CF | RFLAGS.ZF | RFLAGS.SF | RFLAGS.PF | RFLAGS.AF | RFLAGS.OF;

/** Runs `op` with RFLAGS preset and checks that exactly `expected` of the six status flags is left. */
export function expectFlags(
  world: VmxWorld,
  op: () => VmxOutcome,
  expected: number,
  what: string,
): string | null {
  world.ctx.rflags = FLAGS_BEFORE;
  op();
  const got = world.ctx.rflags & STATUS_FLAGS;
  if (got === expected) return null;
  return `${what}: status flags 0x${got.toString(16)}, expected 0x${expected.toString(16)} (SDM 31.2)`;
}
