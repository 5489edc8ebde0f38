import {
  ACCESS,
  ACCESS_CASE_LAYOUT,
  type AccessCaseCpu,
  type AccessCaseSpace,
  AD_UPDATE,
  type AdUpdate,
  accessCaseSliceSize,
  accessCaseSpace,
  accessOf,
  buildScenarioEntries,
  describeAccessCase,
  forEachAccessCase,
  type ScenarioPage,
} from "@nestvisor/x86-arch";
import type { CaseRecorder } from "../case-recorder";
import type { CaseGroup, Suite, SuiteContext } from "../suite";
import { AccessCaseRunner, type AccessTarget } from "./access-target";
import { ShadowPagingAccessTarget } from "./shadow-paging-access-target";
import { shadowEptStage2, TwoDimensionalAccessTarget, tdpStage2 } from "./two-dimensional-access-target";
import { WalkerAccessTarget } from "./walker-access-target";

const LA = { lo: ACCESS_CASE_LAYOUT.LA_LO, hi: ACCESS_CASE_LAYOUT.LA_HI };

let pkuSpace: AccessCaseSpace | null = null;
let noPkuSpace: AccessCaseSpace | null = null;
function spaceOf(pku: boolean): AccessCaseSpace {
  if (pku) {
    pkuSpace ??= accessCaseSpace();
    return pkuSpace;
  }
  noPkuSpace ??= accessCaseSpace({ protectionKeys: false });
  return noPkuSpace;
}

interface MatrixSpec {
  readonly name: string;
  readonly description: string;
  readonly pku: boolean;
  /** Slices of the case space in the fast default and with --full (1 = every case). */
  readonly slices: number;
  readonly fullSlices: number;
  readonly target: (ctx: SuiteContext) => AccessTarget & { pml5eIntact?: () => boolean };
}

function matrixGroup(spec: MatrixSpec, ctx: SuiteContext, index: number): CaseGroup {
  const space = spaceOf(spec.pku);
  const slices = ctx.full ? spec.fullSlices : spec.slices;
  const slice = (ctx.seed + index) % slices;
  const cases = accessCaseSliceSize(space, slices, slice);
  const share = slices === 1 ? "every case" : `slice ${slice} of ${slices}`;
  return {
    id: `access/${spec.name}`,
    description: `${spec.description} (${share} of ${space.total} cases)`,
    cases,
    run(rec: CaseRecorder, c: SuiteContext) {
      const target = spec.target(c);
      const runner = new AccessCaseRunner(target);
      forEachAccessCase(space, slices, slice, (flags) => {
        const failure = runner.runCase(flags);
        if (failure === null) rec.pass();
        else rec.fail(`${describeAccessCase(flags)}: ${failure}`);
      });
      if (target.pml5eIntact !== undefined && !target.pml5eIntact()) {
        rec.fail("the PML5E above the case's PML4 changed (its A flag was already set)");
      }
    },
  };
}

const MATRICES: readonly MatrixSpec[] = [
  {
    name: "walker",
    description: "access.c case space on the model's page walker, 4-level paging, hardware A/D",
    pku: true,
    slices: 16,
    fullSlices: 1,
    target: (c) => new WalkerAccessTarget(c.parts, AD_UPDATE.HARDWARE, 4, LA),
  },
  {
    name: "walker-5level",
    description: "access.c case space on the model's page walker, 5-level paging, hardware A/D",
    pku: true,
    slices: 128,
    fullSlices: 1,
    target: (c) => new WalkerAccessTarget(c.parts, AD_UPDATE.HARDWARE, 5, LA),
  },
  {
    name: "walker-kvm-ad",
    description:
      "access.c case space on the model's page walker with KVM's A/D policy (after a successful walk)",
    pku: true,
    slices: 128,
    fullSlices: 1,
    target: (c) => new WalkerAccessTarget(c.parts, AD_UPDATE.AFTER_SUCCESS, 4, LA),
  },
  {
    name: "shadow-paging",
    description: "access.c case space through the model's shadow paging (L0 without TDP), no PKU",
    pku: false,
    slices: 128,
    fullSlices: 1,
    target: (c) => new ShadowPagingAccessTarget(c.parts),
  },
  {
    name: "tdp",
    description: "access.c case space in an L1 guest on the model's TDP MMU (two-dimensional walks)",
    pku: true,
    slices: 512,
    fullSlices: 1,
    target: (c) => new TwoDimensionalAccessTarget(tdpStage2(c.parts)),
  },
  {
    name: "shadow-ept",
    description:
      "access.c case space in L2 on the model's shadow EPT (EPT02 from an identity EPT12, EPT A/D on)",
    pku: true,
    slices: 512,
    fullSlices: 1,
    target: (c) => new TwoDimensionalAccessTarget(shadowEptStage2(c.parts, true)),
  },
  {
    name: "shadow-ept-no-ad",
    description: "access.c case space in L2 on the model's shadow EPT with EPT A/D off",
    pku: true,
    slices: 1024,
    fullSlices: 1,
    target: (c) => new TwoDimensionalAccessTarget(shadowEptStage2(c.parts, false)),
  },
];

// ---------------------------------------------------------------------------------------------
// smap.c- and pku.c/pks.c-style scenarios on the walker: one page, every combination of the bits.

/** The accesses of a scenario at a CPL: read, write, fetch, and implicit supervisor read and write. */
function accessesAt(cpl: 0 | 3): number[] {
  return [
    accessOf("read", cpl),
    accessOf("write", cpl),
    accessOf("fetch", cpl),
    accessOf("read", cpl, true),
    accessOf("write", cpl, true),
  ];
}

function describeKind(access: number, cpl: number): string {
  const kind = (access & ACCESS.FETCH) !== 0 ? "fetch" : (access & ACCESS.WRITE) !== 0 ? "write" : "read";
  return `${(access & ACCESS.IMPLICIT) !== 0 ? "implicit" : `CPL${cpl}`} ${kind}`;
}

function scenarioGroup(
  name: string,
  description: string,
  combinations: number,
  make: (bits: number) => { cpu: AccessCaseCpu; page: ScenarioPage; cpl: 0 | 3; label: string },
  policy: AdUpdate,
): CaseGroup {
  return {
    id: `access/${name}`,
    description,
    cases: combinations * 5,
    run(rec, c) {
      const target = new WalkerAccessTarget(c.parts, policy, 4, LA);
      const runner = new AccessCaseRunner(target);
      for (let bits = 0; bits < combinations; bits++) {
        const { cpu, page, cpl, label } = make(bits);
        for (const acc of accessesAt(cpl)) {
          buildScenarioEntries(page, runner.model);
          target.store(runner.model);
          const failure = runner.check(cpu, acc);
          if (failure === null) rec.pass();
          else rec.fail(`${label}, ${describeKind(acc, cpl)}: ${failure}`);
        }
      }
    },
  };
}

const SMAP_KEY_BASE = 0x4000_0000;
const PKU_KEY_BASE = 0x5000_0000;

function smapGroup(): CaseGroup {
  return scenarioGroup(
    "smap",
    "smap.c-style: every combination of page U/S and R/W, SMAP, RFLAGS.AC, CR0.WP, SMEP, EFER.NXE and CPL",
    256,
    (bits) => {
      const cpu: AccessCaseCpu = {
        key: SMAP_KEY_BASE + bits,
        smap: (bits & 1) !== 0,
        ac: (bits & 2) !== 0,
        wp: (bits & 4) !== 0,
        smep: (bits & 8) !== 0,
        nxe: (bits & 16) !== 0,
        pke: false,
        pks: false,
        pkru: 0,
        pkrs: 0,
      };
      const page = { user: (bits & 32) !== 0, writable: (bits & 64) !== 0, pkey: 0 };
      const cpl = (bits & 128) !== 0 ? 3 : 0;
      const label = `smap=${+cpu.smap} ac=${+cpu.ac} wp=${+cpu.wp} smep=${+cpu.smep} nxe=${+cpu.nxe} page u=${+page.user} w=${+page.writable}`;
      return { cpu, page, cpl, label };
    },
    AD_UPDATE.HARDWARE,
  );
}

function pkuGroup(): CaseGroup {
  const KEY = 2;
  return scenarioGroup(
    "pku",
    "pku.c/pks.c-style: every combination of page U/S and R/W, CR4.PKE/PKS, PKRU and IA32_PKRS rights, CR0.WP and CPL",
    1024,
    (bits) => {
      const rightsU = bits & 3;
      const rightsS = (bits >> 2) & 3;
      const others = 0xffffffff; // every other key fully disabled: the page's key must be the one used
      const cpu: AccessCaseCpu = {
        key: PKU_KEY_BASE + bits,
        pke: (bits & 16) !== 0,
        pks: (bits & 32) !== 0,
        wp: (bits & 64) !== 0,
        smap: false,
        ac: false,
        smep: false,
        nxe: true,
        pkru: ((others & ~(3 << (2 * KEY))) | (rightsU << (2 * KEY))) >>> 0,
        pkrs: ((others & ~(3 << (2 * KEY))) | (rightsS << (2 * KEY))) >>> 0,
      };
      const page = { user: (bits & 128) !== 0, writable: (bits & 256) !== 0, pkey: KEY };
      const cpl = (bits & 512) !== 0 ? 3 : 0;
      const label = `pke=${+cpu.pke} pks=${+cpu.pks} wp=${+cpu.wp} pkru[2]=${rightsU} pkrs[2]=${rightsS} page u=${+page.user} w=${+page.writable}`;
      return { cpu, page, cpl, label };
    },
    AD_UPDATE.HARDWARE,
  );
}

/** The `access` suite: kvm-unit-tests x86/access.c, smap.c and pku.c case spaces. */
export const ACCESS_SUITE: Suite = {
  name: "access",
  description:
    "kvm-unit-tests x86/access.c, smap.c and pku.c case spaces on the walker, through shadow paging, and through TDP/shadow EPT",
  groups(ctx) {
    return [...MATRICES.map((spec, i) => matrixGroup(spec, ctx, i)), smapGroup(), pkuGroup()];
  },
};
