import {
  BUILTIN_LAYOUT,
  type HypervisorFlags,
  type WorkloadProgram,
  withFlags,
  workload,
} from "@nestvisor/hypervisor";
import type { CaseRecorder } from "../case-recorder";
import { Prng } from "../prng";
import type { CaseGroup, SuiteContext } from "../suite";
import { snapshotDifference, workloadView } from "./snapshot-difference";

/**
 * Whether the hypervisor translates a guest's addresses with EPT or with shadow page tables is
 * invisible to the guest (SDM 4: the guest's paging structures alone define its translations). The
 * group runs seeded random programs over address spaces that map one GVA to different frames — CR3
 * switches with and without PCIDs and the no-flush hint, reads and writes of each process's 4-KiB
 * pages and of its 2-MiB page, INVLPG, and exits between them — at L1 with EPT and on shadow paging
 * (`ept`), at L2 with L1 on EPT and on shadow paging (`l1Ept`), and each on 2-MiB host pages
 * (`hugePages`) too. The workload's view must be the same. The processor's TLB keeps entries across
 * exits (VPID), so a flush the hypervisor skips lets a process read through another's cached
 * translation, which this group sees.
 */

const SPACES = 3;
const PAGES = 2;
const PAGE = 4096;
const MIB2 = 0x20_0000;
/** Each process's 2-MiB page: the same GVA, a different 2-MiB frame from this GPA up. */
const HUGE_GVA = 0x4000_0000;
const HUGE_GPA = 0x0120_0000;

/** The variants each program runs in, against the run's configuration at the same level. */
const VARIANTS: readonly { readonly level: 1 | 2; readonly flip: Partial<HypervisorFlags> }[] = [
  { level: 1, flip: { ept: false } },
  { level: 1, flip: { ept: false, hugePages: true } },
  { level: 2, flip: { l1Ept: false } },
  { level: 2, flip: { hugePages: true } },
];

/** One random program: `steps` operations over `SPACES` processes, with PCIDs when `pcid`. */
function randomProgram(prng: Prng, level: 1 | 2, pcid: boolean, steps: number): WorkloadProgram {
  const L = BUILTIN_LAYOUT;
  const spaces = [];
  for (let p = 0; p < SPACES; p++) {
    spaces.push({
      name: `p${p}`,
      ...(pcid ? { pcid: p + 1 } : {}),
      mappings: [
        { gva: L.KERNEL_DATA, pages: 1, executable: false },
        { gva: L.USER_BASE, gpa: L.HIGH_BASE + p * PAGES * PAGE, pages: PAGES, executable: false },
        { gva: HUGE_GVA, gpa: HUGE_GPA + p * MIB2, pages: 1, pageSize: "2M" as const, executable: false },
      ],
    });
  }
  const b = workload(`paging-method-${level}${pcid ? "-pcid" : ""}`).setup({
    level,
    paging: "4-level",
    memory: "32MiB",
    cpl: 0,
    addressSpaces: spaces,
    initialAddressSpace: "p0",
  });
  b.iteration("start");
  for (let i = 0; i < steps; i++) {
    const page =
      prng.below(3) === 0
        ? HUGE_GVA + prng.below(MIB2 / PAGE) * PAGE
        : L.USER_BASE + prng.below(PAGES) * PAGE;
    switch (prng.below(7)) {
      case 0:
      case 1:
        b.movToCr3({ space: `p${prng.below(SPACES)}` }, pcid && prng.below(2) === 0 ? { noFlush: true } : {});
        break;
      case 2:
      case 3:
        b.read(page, { size: 8 });
        break;
      case 4:
        b.write(page, { size: 8, value: prng.next() });
        break;
      case 5:
        b.invlpg(page);
        break;
      default:
        b.cpuid(prng.below(2));
        break;
    }
  }
  return b.build();
}

const CASES_PER_PROGRAM = VARIANTS.length;

function programCount(full: boolean): number {
  return full ? 24 : 6;
}

/** The `differential/paging-method` group. */
export function pagingMethodGroup(ctx: SuiteContext): CaseGroup {
  const programs = programCount(ctx.full);
  const unsupported =
    !ctx.flags.ept || !ctx.flags.l1Ept
      ? "compares EPT with shadow paging: run with ept=on and l1Ept=on"
      : undefined;
  return {
    id: "differential/paging-method",
    description:
      "random CR3/PCID/INVLPG programs: the guest-visible state is the same with EPT and on shadow paging, at L1 (ept) and at L2 (l1Ept), on 4-KiB and 2-MiB host pages",
    cases: programs * CASES_PER_PROGRAM,
    ...(unsupported === undefined ? {} : { skip: unsupported }),
    run(rec: CaseRecorder, c: SuiteContext) {
      const prng = new Prng(c.seed ^ 0x7a61);
      for (let n = 0; n < programs; n++) {
        const pcid = n % 2 === 1;
        const steps = 24 + prng.below(40);
        const seed = prng.next();
        const run = (level: 1 | 2, config: HypervisorFlags) => {
          const machine = c.model.createMachine({
            program: randomProgram(new Prng(seed), level, pcid, steps),
            config,
            innerConfig: config,
          });
          machine.run();
          return workloadView(machine.snapshot());
        };
        // The run's configuration at each level, once for all the variants at that level.
        const references = new Map<1 | 2, ReturnType<typeof run> | Error>();
        for (const { level, flip } of VARIANTS) {
          const flipped = Object.entries(flip)
            .map(([name, on]) => `${name}=${on ? "on" : "off"}`)
            .join(" ");
          const label = `program ${n} (${steps} steps${pcid ? ", PCIDs" : ""}) at L${level}, ${flipped}`;
          let want = references.get(level);
          if (want === undefined) {
            try {
              want = run(level, c.flags);
            } catch (error) {
              want = error as Error;
            }
            references.set(level, want);
          }
          let got: ReturnType<typeof run>;
          try {
            if (want instanceof Error) throw want;
            got = run(level, withFlags(c.flags, flip));
          } catch (error) {
            rec.fail(`${label}: the machine failed: ${(error as Error).message}`);
            continue;
          }
          const d = snapshotDifference(got, want);
          if (d === null) rec.pass();
          else rec.fail(`${label}: ${d} (the guest can tell how its memory is translated)`);
        }
      }
    },
  };
}
