/**
 * Compiles a workload document (`WorkloadSpec`) into a `WorkloadProgram`, checking everything a
 * guest program must satisfy before it can run: field types and ranges (from the field tables in
 * workload-spec.ts), the setup's consistency (paging mode against CR0/CR4/EFER, mappings against
 * memory and the paging mode), and each operation against the setup (canonical, mapped, aligned
 * accesses; CR values that would not #GP for a reason visible in the value alone; known address
 * spaces and MSR names). All problems are collected and thrown together as a `WorkloadBuildError`,
 * each with the path of the field at fault (`steps[3].cpuid.leaf`); nothing is returned half-built.
 *
 * What is left to the runtime: faults that depend on state the program changes (a write to a
 * read-only page with CR0.WP = 1, a user access to a supervisor page, a PCIDE 0→1 switch with a
 * non-zero PCID in CR3), which are guest-visible results, not bad input.
 */

import {
  CR0,
  CR4,
  CR4_HI,
  EFER,
  MODERN_CPU,
  MSR_LIST,
  msrIndex,
  PAGE_1G,
  PAGE_2M,
  PAGE_4K,
  PAGE_4M,
  PAGING_MODE,
  type PagingMode,
  pagingModeOf,
} from "@nestvisor/x86-arch";
import { GuestPageTableError, guestPageTablePages, guestPhysicalBytes } from "./guest-page-tables";
import { inMmioWindow } from "./mmio-devices";
import { didYouMeanSuffix } from "./name-suggestion";
import { guestPhysicalEnd, literalCr3Problem } from "./workload-cr3-check";
import {
  type AddressSpaceLayout,
  type Cpl,
  CR3_FLAG,
  type GvaMapping,
  LOOP_SLOT,
  OP,
  OPERAND_STRIDE,
  type Opcode,
  type WorkloadLevel,
  type WorkloadProgram,
  type WorkloadSetup,
} from "./workload-ops";
import {
  type AddressSpaceSpec,
  checkLeaf,
  clipText,
  type FieldTable,
  formatGot,
  formatNumber,
  isStepName,
  listKeys,
  MAX_LOOP_DEPTH,
  type MappingSpec,
  type PageSizeName,
  type PagingName,
  parseByteSize,
  pathKey,
  quoteText,
  STEP_NAMES,
  STEP_TABLE,
  type StepName,
  type StepSpec,
  type U64,
  WORKLOAD_FIELDS,
  type WorkloadSpec,
} from "./workload-spec";

/** One thing wrong with a workload: the path of the field at fault and what is wrong. */
export interface WorkloadProblem {
  /** `steps[3].cpuid.leaf`, `setup.addressSpaces[0].mappings[1].gva`, or "" for the whole document. */
  readonly path: string;
  readonly message: string;
}

/** Bad workload input (DESIGN.md §2.8): every problem found, each with its path. */
export class WorkloadBuildError extends Error {
  readonly workload: string;
  readonly problems: readonly WorkloadProblem[];
  constructor(workload: string, problems: readonly WorkloadProblem[]) {
    const lines = problems.map((p) => (p.path === "" ? p.message : `${p.path}: ${p.message}`));
    super(
      `workload ${quoteText(workload)}: ${problems.length === 1 ? lines[0] : `\n  ${lines.join("\n  ")}`}`,
    );
    this.name = "WorkloadBuildError";
    this.workload = workload;
    this.problems = problems;
  }
}

/** More problems than this are not reported (the first ones are the useful ones). */
export const MAX_PROBLEMS = 100;

/**
 * Most operations a workload may execute, loops unrolled. The model runs about a million simple
 * operations a second, and tens of thousands of nested exits, so 2^40 already takes two weeks or
 * more: past it (nested loops whose counts multiply) is a mistake, not a workload.
 */
export const MAX_OPERATIONS = 2 ** 40;

/** Default guest memory: 16 MiB. */
export const DEFAULT_MEMORY_BYTES = 16 * 2 ** 20;
/** Default nesting level: a nested guest (L2), the project's subject. */
export const DEFAULT_LEVEL: WorkloadLevel = 2;

const PAGING_BY_NAME: Readonly<Record<PagingName, PagingMode>> = {
  none: PAGING_MODE.NONE,
  "32-bit": PAGING_MODE.BIT32,
  pae: PAGING_MODE.PAE,
  "4-level": PAGING_MODE.LEVEL4,
  "5-level": PAGING_MODE.LEVEL5,
};

const PAGE_SIZE_BYTES: Readonly<Record<PageSizeName, number>> = {
  "4K": PAGE_4K,
  "2M": PAGE_2M,
  "4M": PAGE_4M,
  "1G": PAGE_1G,
};

/** CR0 bits a MOV may set (SDM 2.5); the others in 31:0 are reserved, and 63:32 must be zero. */
const CR0_DEFINED = Object.values(CR0).reduce((mask, bit) => mask + bit, 0);
/** CR4 bits 31:0 that are defined (SDM 2.5); setting any other raises #GP. */
const CR4_DEFINED_LO = Object.values(CR4).reduce((mask, bit) => (mask | bit) >>> 0, 0);
const CR4_DEFINED_HI = Object.values(CR4_HI).reduce((mask, bit) => (mask | bit) >>> 0, 0);
/** EFER bits an Intel guest may set (SDM Vol. 4 Table 2-2, MSR C0000080H); the others are AMD-only. */
const EFER_INTEL = EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE;

/** Linux's CR0 with paging: PE MP ET NE WP AM PG. */
const CR0_PAGED = (CR0.PE | CR0.MP | CR0.ET | CR0.NE | CR0.WP | CR0.AM | CR0.PG) >>> 0;
/** Protected mode without paging. */
const CR0_UNPAGED = CR0.PE | CR0.ET | CR0.NE;
const CR4_COMMON = CR4.PGE | CR4.OSFXSR | CR4.OSXMMEXCPT;

/** The initial CR0, CR4 and EFER a setup gets by default for a paging mode. */
export function defaultControlRegisters(mode: PagingMode): { cr0: number; cr4: number; efer: number } {
  switch (mode) {
    case PAGING_MODE.NONE:
      return { cr0: CR0_UNPAGED, cr4: 0, efer: 0 };
    case PAGING_MODE.BIT32:
      return { cr0: CR0_PAGED, cr4: CR4_COMMON | CR4.PSE, efer: 0 };
    case PAGING_MODE.PAE:
      return { cr0: CR0_PAGED, cr4: CR4_COMMON | CR4.PAE, efer: EFER.NXE };
    case PAGING_MODE.LEVEL4:
      return { cr0: CR0_PAGED, cr4: CR4_COMMON | CR4.PAE, efer: EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE };
    default:
      return {
        cr0: CR0_PAGED,
        cr4: CR4_COMMON | CR4.PAE | CR4.LA57,
        efer: EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE,
      };
  }
}

const TWO_32 = 2n ** 32n;
const TWO_64 = 2n ** 64n;

function join(path: string, key: string): string {
  const shown = pathKey(key);
  return path === "" ? shown : `${path}.${shown}`;
}

function toBig(value: U64): bigint {
  return typeof value === "bigint" ? value : BigInt(value);
}

function isLongMode(mode: PagingMode): boolean {
  return mode === PAGING_MODE.LEVEL4 || mode === PAGING_MODE.LEVEL5;
}

/**
 * Whether a linear address is canonical for the paging mode (SDM 3.3.7.1: bits 63:47, or 63:56
 * with 5-level paging, all equal). Outside IA-32e mode linear addresses are 32 bits.
 */
export function isCanonical(address: bigint, mode: PagingMode): boolean {
  if (address < 0n || address >= TWO_64) return false;
  if (!isLongMode(mode)) return address < TWO_32;
  const shift = mode === PAGING_MODE.LEVEL5 ? 56n : 47n;
  const top = address >> shift;
  return top === 0n || top === (1n << (64n - shift)) - 1n;
}

/** Whether [first, last] is a canonical range that does not cross the non-canonical hole. */
function isCanonicalRange(first: bigint, last: bigint, mode: PagingMode): boolean {
  return last >= first && isCanonical(first, mode) && isCanonical(last, mode) && first >> 63n === last >> 63n;
}

function canonicalRule(mode: PagingMode): string {
  if (mode === PAGING_MODE.LEVEL5) return "bits 63:56 must all be equal with 5-level paging (SDM 3.3.7.1)";
  if (mode === PAGING_MODE.LEVEL4) return "bits 63:47 must all be equal with 4-level paging (SDM 3.3.7.1)";
  return "linear addresses are 32 bits outside IA-32e mode";
}

function hexBig(value: bigint): string {
  return `0x${value.toString(16)}`;
}

/** Accumulates problems; `add` returns false so checks can `return problems.add(…)`. */
class Problems {
  readonly list: WorkloadProblem[] = [];
  add(path: string, message: string): false {
    if (this.list.length < MAX_PROBLEMS) this.list.push({ path, message });
    return false;
  }
  get count(): number {
    return this.list.length;
  }
}

/**
 * Checks a plain object against a field table: unknown keys (with a suggestion), missing required
 * keys, leaf values, and nested objects and lists. Step lists are left to the caller. Returns true
 * when nothing was wrong.
 */
export function checkFields(
  value: unknown,
  fields: FieldTable,
  path: string,
  problems: WorkloadProblem[],
): boolean {
  const sink = new Problems();
  checkFieldsInto(value, fields, path, sink);
  problems.push(...sink.list);
  return sink.count === 0;
}

function checkFieldsInto(value: unknown, fields: FieldTable, path: string, problems: Problems): boolean {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return problems.add(path, `expected a mapping, got ${formatGot(value)}`);
  }
  const before = problems.count;
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (record[key] === undefined) continue;
    // Own keys only: `toString` or a JSON `__proto__` key is unknown, not inherited from Object.
    if (!Object.hasOwn(fields, key)) {
      const shown = clipText(key);
      problems.add(
        join(path, shown),
        `unknown key ${quoteText(key)}${didYouMeanSuffix(shown, Object.keys(fields))}`,
      );
    }
  }
  for (const [key, info] of Object.entries(fields)) {
    const item = record[key];
    const itemPath = join(path, key);
    if (item === undefined) {
      if (info.required === true) problems.add(path, `missing required key "${key}"`);
      continue;
    }
    const leafProblem = checkLeaf(info.type, item);
    if (leafProblem !== undefined) {
      problems.add(itemPath, leafProblem);
      continue;
    }
    if (info.type.kind === "object") checkFieldsInto(item, info.type.fields, itemPath, problems);
    if (info.type.kind === "list") {
      const fieldsOfItems = info.type.fields;
      (item as unknown[]).forEach((element, i) => {
        checkFieldsInto(element, fieldsOfItems, `${itemPath}[${i}]`, problems);
      });
    }
  }
  return problems.count === before;
}

interface Interval {
  readonly start: bigint;
  readonly end: bigint;
}

function mergeIntervals(intervals: Interval[]): Interval[] {
  const sorted = [...intervals].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const merged: { start: bigint; end: bigint }[] = [];
  for (const interval of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && interval.start <= last.end) {
      if (interval.end > last.end) last.end = interval.end;
    } else merged.push({ start: interval.start, end: interval.end });
  }
  return merged;
}

function covers(merged: readonly Interval[], start: bigint, end: bigint): boolean {
  for (const interval of merged) if (interval.start <= start && end <= interval.end) return true;
  return false;
}

interface ResolvedSetup {
  readonly setup: WorkloadSetup;
  /** Per space, its mapped GVA ranges merged (for coverage checks); for paging "none", [0, memory). */
  readonly coverage: readonly (readonly Interval[])[];
}

function resolveSpaceRef(
  ref: string | number,
  spaces: readonly { readonly name: string }[],
  path: string,
  problems: Problems,
): number | undefined {
  if (typeof ref === "number") {
    if (ref < spaces.length) return ref;
    problems.add(path, `address space index ${ref} is out of range (there are ${spaces.length})`);
    return undefined;
  }
  const index = spaces.findIndex((space) => space.name === ref);
  if (index >= 0) return index;
  problems.add(
    path,
    `unknown address space "${ref}"${didYouMeanSuffix(
      ref,
      spaces.map((s) => s.name),
    )}${spaces.length === 0 ? " (there are none)" : ""}`,
  );
  return undefined;
}

function resolveMapping(
  spec: MappingSpec,
  path: string,
  mode: PagingMode,
  memoryBytes: number,
  cpl: Cpl,
  cr4: number,
  problems: Problems,
): { mapping: GvaMapping; interval: Interval } | undefined {
  const before = problems.count;
  const pageSizeName = spec.pageSize ?? "4K";
  const pageSize = PAGE_SIZE_BYTES[pageSizeName];
  const sizeAllowed =
    pageSize === PAGE_4K ||
    (pageSize === PAGE_2M && (mode === PAGING_MODE.PAE || isLongMode(mode))) ||
    (pageSize === PAGE_4M && mode === PAGING_MODE.BIT32 && (cr4 & CR4.PSE) !== 0) ||
    (pageSize === PAGE_1G && isLongMode(mode));
  if (!sizeAllowed) {
    // SDM 4.3 (4-MByte pages need CR4.PSE), 4.4.2 (2-MByte PAE), 4.5.4 (1-GByte pages in 4/5-level paging).
    problems.add(
      join(path, "pageSize"),
      `${pageSizeName} pages are not available with this paging mode (SDM 4.3-4.5)`,
    );
  }
  const gva = toBig(spec.gva);
  const bytes = BigInt(spec.pages) * BigInt(pageSize);
  const size = BigInt(pageSize);
  if (gva % size !== 0n)
    problems.add(join(path, "gva"), `${hexBig(gva)} is not aligned to the ${pageSizeName} page size`);
  if (!isCanonicalRange(gva, gva + bytes - 1n, mode)) {
    problems.add(
      join(path, "gva"),
      `the range ${hexBig(gva)}..${hexBig(gva + bytes - 1n)} is not canonical: ${canonicalRule(mode)}`,
    );
  }
  let gpa = spec.gpa;
  if (gpa === undefined) {
    if (gva + bytes > BigInt(memoryBytes)) {
      problems.add(
        path,
        `gpa defaults to gva, and ${hexBig(gva)}..${hexBig(gva + bytes - 1n)} is beyond memory (${formatNumber(memoryBytes)} bytes): give gpa`,
      );
    }
    gpa = Number(gva < BigInt(memoryBytes) ? gva : 0n);
  } else {
    if (gpa % pageSize !== 0)
      problems.add(join(path, "gpa"), `${formatNumber(gpa)} is not aligned to the ${pageSizeName} page size`);
    // RAM, or the MMIO device window above it (mmio-devices.ts).
    if (BigInt(gpa) + bytes > BigInt(memoryBytes) && !inMmioWindow(gpa, Number(bytes))) {
      problems.add(
        join(path, "gpa"),
        `maps guest-physical ${formatNumber(gpa)}..${hexBig(BigInt(gpa) + bytes - 1n)}, beyond memory (${formatNumber(memoryBytes)} bytes) and outside the MMIO device window 0xfe000000..0xfecfffff`,
      );
    }
  }
  if (problems.count !== before) return undefined;
  return {
    mapping: Object.freeze({
      gvaLo: Number(gva % TWO_32),
      gvaHi: Number(gva / TWO_32),
      gpa,
      pages: spec.pages,
      pageSize,
      writable: spec.writable ?? true,
      user: spec.user ?? cpl === 3,
      executable: spec.executable ?? true,
    }),
    interval: { start: gva, end: gva + bytes },
  };
}

function checkCr0Value(
  value: bigint,
  path: string,
  mode: PagingMode,
  problems: Problems,
): number | undefined {
  if (value >= TWO_32) {
    return void problems.add(path, `${hexBig(value)} sets CR0 bits 63:32, which are reserved (#GP; SDM 2.5)`);
  }
  const cr0 = Number(value);
  const undefinedBits = (cr0 & ~CR0_DEFINED) >>> 0;
  if (undefinedBits !== 0) {
    return void problems.add(
      path,
      `${hexBig(value)} sets reserved CR0 bits 0x${undefinedBits.toString(16)} (SDM 2.5)`,
    );
  }
  if ((cr0 & CR0.PG) !== 0 && (cr0 & CR0.PE) === 0) {
    return void problems.add(
      path,
      `${hexBig(value)} sets CR0.PG without CR0.PE (#GP; SDM Vol. 2B MOV to CR0)`,
    );
  }
  if ((cr0 & CR0.NW) !== 0 && (cr0 & CR0.CD) === 0) {
    return void problems.add(
      path,
      `${hexBig(value)} sets CR0.NW without CR0.CD (#GP; SDM Vol. 2B MOV to CR0)`,
    );
  }
  if (isLongMode(mode) && (cr0 & CR0.PG) === 0) {
    return void problems.add(
      path,
      `${hexBig(value)} clears CR0.PG in 64-bit mode (#GP; SDM Vol. 2B MOV to CR0)`,
    );
  }
  return cr0;
}

function checkCr4Value(
  value: bigint,
  path: string,
  mode: PagingMode,
  problems: Problems,
): number | undefined {
  if (value >= TWO_64) return void problems.add(path, `${hexBig(value)} does not fit in 64 bits`);
  const lo = Number(value % TWO_32);
  const hi = Number(value / TWO_32);
  const reservedLo = (lo & ~CR4_DEFINED_LO) >>> 0;
  const reservedHi = (hi & ~CR4_DEFINED_HI) >>> 0;
  if (reservedLo !== 0 || reservedHi !== 0) {
    const bits = BigInt(reservedHi) * TWO_32 + BigInt(reservedLo);
    return void problems.add(path, `${hexBig(value)} sets reserved CR4 bits ${hexBig(bits)} (#GP; SDM 2.5)`);
  }
  if ((lo & CR4.PCIDE) !== 0 && !isLongMode(mode)) {
    return void problems.add(
      path,
      `${hexBig(value)} sets CR4.PCIDE outside IA-32e mode (#GP; SDM Vol. 2B MOV to CR4)`,
    );
  }
  return hi * 2 ** 32 + lo;
}

/**
 * Bytes the address spaces of a workload may map in all. After a run the model reads back every
 * mapped page to compare guest-visible memory (run-workload.ts: guestStateSnapshot), about a minute
 * for 4 GiB; far more would not finish.
 */
export const MAX_MAPPED_BYTES = 2 ** 32;

/**
 * Checks that the machine can build and run a setup (true when it can). The mappings must fit
 * `MAX_MAPPED_BYTES`. The page tables are built right above the RAM (machine.ts), so RAM plus
 * tables must end where the tables can be reached: below 2^MAXPHYADDR, and below 4 GiB with 32-bit
 * paging (CR3 and PDEs hold bits 31:12; SDM 4.3) and PAE paging (CR3 holds bits 31:5 of the
 * page-directory-pointer table; SDM 4.4.1).
 */
function checkPhysicalLayout(setup: WorkloadSetup, defaultSpaces: boolean, problems: Problems): boolean {
  const mode = setup.pagingMode;
  if (mode === PAGING_MODE.NONE) return true;
  let mapped = 0;
  for (const space of setup.addressSpaces)
    for (const mapping of space.mappings) mapped += mapping.pages * mapping.pageSize;
  if (mapped > MAX_MAPPED_BYTES) {
    const limit = `more than the ${formatNumber(MAX_MAPPED_BYTES)} bytes (4 GiB) a run can read back when it ends`;
    return problems.add(
      defaultSpaces ? "setup.memory" : "setup.addressSpaces",
      defaultSpaces
        ? `the default address space identity-maps all ${formatNumber(mapped)} bytes of memory, ${limit}: give less memory, or setup.addressSpaces mapping only what the steps use`
        : `the mappings cover ${formatNumber(mapped)} bytes in all, ${limit}`,
    );
  }
  let tablePages: number;
  try {
    tablePages = guestPageTablePages(setup);
  } catch (error) {
    if (!(error instanceof GuestPageTableError)) throw error;
    return problems.add("setup.addressSpaces", error.message);
  }
  const end = guestPhysicalBytes(setup, tablePages);
  const bits = mode === PAGING_MODE.BIT32 || mode === PAGING_MODE.PAE ? 32 : MODERN_CPU.maxPhysAddr;
  if (end > 2 ** bits) {
    const holds =
      bits === 32
        ? `the 4 GiB that ${pagingNameOf(mode)} paging's CR3 can point into (SDM ${mode === PAGING_MODE.PAE ? "4.4.1" : "4.3"})`
        : `the ${bits}-bit physical addresses of the modelled CPU (MAXPHYADDR)`;
    return problems.add(
      "setup.memory",
      `the page tables are built right above memory, at ${formatNumber(setup.memoryBytes)}..${formatNumber(end - 1)}, beyond ${holds}: give less memory`,
    );
  }
  return true;
}

function resolveSetup(spec: WorkloadSpec, problems: Problems): ResolvedSetup | undefined {
  const setupSpec = spec.setup ?? {};
  const before = problems.count;
  const level = setupSpec.level ?? DEFAULT_LEVEL;
  const mode = PAGING_BY_NAME[setupSpec.paging ?? "4-level"];
  const memoryBytes = parseByteSize(setupSpec.memory ?? DEFAULT_MEMORY_BYTES) ?? DEFAULT_MEMORY_BYTES;
  const cpl = setupSpec.cpl ?? 0;
  const defaults = defaultControlRegisters(mode);
  const usesPcid = (setupSpec.addressSpaces ?? []).some((space) => (space.pcid ?? 0) !== 0);

  const cr0 =
    setupSpec.cr0 === undefined
      ? defaults.cr0
      : checkCr0Value(toBig(setupSpec.cr0), "setup.cr0", mode, problems);
  const cr4 =
    setupSpec.cr4 === undefined
      ? defaults.cr4 + (usesPcid && isLongMode(mode) ? CR4.PCIDE : 0)
      : checkCr4Value(toBig(setupSpec.cr4), "setup.cr4", mode, problems);
  let efer: number | undefined = defaults.efer;
  if (setupSpec.efer !== undefined) {
    const value = toBig(setupSpec.efer);
    if (value >= TWO_32 || (Number(value) & ~EFER_INTEL) !== 0) {
      efer = void problems.add(
        "setup.efer",
        `${hexBig(value)} sets IA32_EFER bits other than SCE, LME, LMA and NXE`,
      );
    } else efer = Number(value);
  }
  if (cr0 !== undefined && cr4 !== undefined && efer !== undefined) {
    const selected = pagingModeOf(cr0, cr4 % 2 ** 32, efer);
    if (selected !== mode) {
      const where =
        setupSpec.cr0 !== undefined ? "setup.cr0" : setupSpec.cr4 !== undefined ? "setup.cr4" : "setup.efer";
      problems.add(
        where,
        `CR0, CR4 and EFER select ${pagingNameOf(selected)} paging, but setup.paging is ${pagingNameOf(mode)} (SDM 4.1.1)`,
      );
    }
    const longActive = (efer & EFER.LME) !== 0 && (cr0 & CR0.PG) !== 0;
    if (longActive !== ((efer & EFER.LMA) !== 0)) {
      problems.add("setup.efer", "EFER.LMA must be set exactly when EFER.LME and CR0.PG are (SDM 2.2.1)");
    }
  }

  const addressSpaceSpecs: readonly AddressSpaceSpec[] =
    setupSpec.addressSpaces ??
    (mode === PAGING_MODE.NONE
      ? []
      : [{ name: "identity", mappings: [{ gva: 0, pages: memoryBytes / PAGE_4K, pageSize: "4K" }] }]);
  if (mode === PAGING_MODE.NONE && addressSpaceSpecs.length > 0) {
    problems.add("setup.addressSpaces", "paging is none: there are no page tables, so no address spaces");
  }
  if (mode !== PAGING_MODE.NONE && addressSpaceSpecs.length === 0) {
    problems.add("setup.addressSpaces", "paging is on: give at least one address space");
  }
  const spaces: AddressSpaceLayout[] = [];
  const coverage: Interval[][] = [];
  const names = new Set<string>();
  addressSpaceSpecs.forEach((spaceSpec, s) => {
    const spacePath = `setup.addressSpaces[${s}]`;
    if (names.has(spaceSpec.name))
      problems.add(join(spacePath, "name"), `duplicate address-space name "${spaceSpec.name}"`);
    names.add(spaceSpec.name);
    const pcid = spaceSpec.pcid ?? 0;
    if (pcid !== 0 && cr4 !== undefined && (cr4 & CR4.PCIDE) === 0) {
      problems.add(join(spacePath, "pcid"), "a non-zero PCID needs CR4.PCIDE in setup.cr4 (SDM 4.10.1)");
    }
    const mappings: GvaMapping[] = [];
    const intervals: Interval[] = [];
    const mappingIndices: number[] = [];
    spaceSpec.mappings.forEach((mappingSpec, m) => {
      const resolved = resolveMapping(
        mappingSpec,
        `${spacePath}.mappings[${m}]`,
        mode,
        memoryBytes,
        cpl,
        cr4 ?? 0,
        problems,
      );
      if (resolved === undefined) return;
      const overlap = intervals.findIndex(
        (i) => i.start < resolved.interval.end && resolved.interval.start < i.end,
      );
      if (overlap >= 0) {
        problems.add(`${spacePath}.mappings[${m}]`, `overlaps mappings[${mappingIndices[overlap]}] in GVA`);
        return;
      }
      mappings.push(resolved.mapping);
      intervals.push(resolved.interval);
      mappingIndices.push(m);
    });
    spaces.push(Object.freeze({ name: spaceSpec.name, pcid, mappings: Object.freeze(mappings) }));
    coverage.push(mergeIntervals(intervals));
  });
  let initialAddressSpace = 0;
  if (setupSpec.initialAddressSpace !== undefined) {
    initialAddressSpace =
      resolveSpaceRef(setupSpec.initialAddressSpace, spaces, "setup.initialAddressSpace", problems) ?? 0;
  }
  if (problems.count !== before || cr0 === undefined || cr4 === undefined || efer === undefined)
    return undefined;
  const setup: WorkloadSetup = Object.freeze({
    level,
    pagingMode: mode,
    memoryBytes,
    cpl,
    cr0,
    cr4,
    efer,
    addressSpaces: Object.freeze(spaces),
    initialAddressSpace,
  });
  if (!checkPhysicalLayout(setup, setupSpec.addressSpaces === undefined, problems)) return undefined;
  return {
    setup,
    coverage: mode === PAGING_MODE.NONE ? [[{ start: 0n, end: BigInt(memoryBytes) }]] : coverage,
  };
}

function pagingNameOf(mode: PagingMode): string {
  return (
    (Object.keys(PAGING_BY_NAME) as PagingName[]).find((name) => PAGING_BY_NAME[name] === mode) ??
    String(mode)
  );
}

/** Mutable state of one compilation. */
class Emitter {
  readonly opcodes: number[] = [];
  readonly operands: number[] = [];
  readonly stepPaths: string[] = [];
  readonly labels: string[] = [];
  readonly labelIndex = new Map<string, number>();
  /** Counts of the loops enclosing the current step, outermost first. */
  readonly loopCounts: number[] = [];
  maxDepth = 0;
  /** Whether a loop has been reported for running more than `MAX_OPERATIONS` (reported once). */
  tooManyOperations = false;
  pcideEverSet: boolean;
  readonly noFlushPaths: string[] = [];
  /** Where the guest-physical memory ends (`guestPhysicalEnd`), once a literal CR3 needs it. */
  physicalEnd: number | undefined;
  readonly resolved: ResolvedSetup;
  readonly problems: Problems;
  constructor(resolved: ResolvedSetup, problems: Problems) {
    this.resolved = resolved;
    this.problems = problems;
    this.pcideEverSet = (resolved.setup.cr4 & CR4.PCIDE) !== 0;
  }

  /** Appends an operation; `args` fill its operand slots from slot 0 (see the `*_SLOT` tables). */
  emit(opcode: Opcode, path: string, ...args: number[]): number {
    const index = this.opcodes.length;
    this.opcodes.push(opcode);
    for (let slot = 0; slot < OPERAND_STRIDE; slot++) this.operands.push((args[slot] ?? 0) >>> 0);
    this.stepPaths.push(path);
    return index;
  }

  label(text: string): number {
    let index = this.labelIndex.get(text);
    if (index === undefined) {
      index = this.labels.length;
      this.labels.push(text);
      this.labelIndex.set(text, index);
    }
    return index;
  }
}

/**
 * What is wrong with a literal CR3 value (bit 63 aside), or undefined: outside IA-32e mode MOV to
 * CR3 loads 32 bits, so a wider value cannot be what the guest does.
 */
function checkCr3Value(value: bigint, mode: PagingMode): string | undefined {
  if (!isLongMode(mode) && value >= TWO_32)
    return `${hexBig(value)} does not fit in 32 bits: CR3 is 32 bits outside IA-32e mode`;
  return undefined;
}

function split(value: bigint): [number, number] {
  return [Number(value % TWO_32), Number(value / TWO_32)];
}

function fitsInBytes(value: bigint, bytes: number): boolean {
  return value < 1n << BigInt(8 * bytes);
}

function checkStride(
  stride: number,
  base: bigint,
  extent: number,
  path: string,
  emitter: Emitter,
): { ok: boolean; last: bigint } {
  if (stride === 0) return { ok: true, last: base + BigInt(extent) };
  const count = emitter.loopCounts[emitter.loopCounts.length - 1];
  if (count === undefined) {
    emitter.problems.add(
      join(path, "stride"),
      "a stride needs an enclosing loop (it steps once per iteration of the innermost loop)",
    );
    return { ok: false, last: base };
  }
  const span = BigInt(stride) * BigInt(Math.max(count - 1, 0));
  if (span > BigInt(Number.MAX_SAFE_INTEGER)) {
    emitter.problems.add(join(path, "stride"), `stride × (count − 1) = ${hexBig(span)} exceeds 2^53`);
    return { ok: false, last: base };
  }
  return { ok: true, last: base + span + BigInt(extent) };
}

function emitMemory(
  opcode: Opcode,
  name: string,
  operands: Record<string, unknown>,
  path: string,
  e: Emitter,
): void {
  const { setup, coverage } = e.resolved;
  const gva = toBig(operands.gva as U64);
  const size = (operands.size as number | undefined) ?? 8;
  const stride = (operands.stride as number | undefined) ?? 0;
  const value = toBig((operands.value as U64 | undefined) ?? 0);
  const before = e.problems.count;
  if (gva % BigInt(size) !== 0n) {
    e.problems.add(
      join(path, "gva"),
      `${hexBig(gva)} is not aligned to size ${size} (accesses are naturally aligned, so none splits across pages)`,
    );
  }
  if (stride % size !== 0)
    e.problems.add(join(path, "stride"), `${formatNumber(stride)} is not a multiple of size ${size}`);
  if (opcode === OP.WRITE && !fitsInBytes(value, size)) {
    e.problems.add(join(path, "value"), `${hexBig(value)} does not fit in a ${size}-byte access`);
  }
  const { ok, last } = checkStride(stride, gva, size, path, e);
  if (ok && e.problems.count === before) {
    if (!isCanonicalRange(gva, last - 1n, setup.pagingMode)) {
      e.problems.add(
        join(path, "gva"),
        `${hexBig(gva)}..${hexBig(last - 1n)} is not canonical: ${canonicalRule(setup.pagingMode)}`,
      );
    } else if (!coverage.some((intervals) => covers(intervals, gva, last))) {
      const what =
        setup.pagingMode === PAGING_MODE.NONE ? "inside guest memory" : "mapped by any address space";
      e.problems.add(join(path, "gva"), `${name} of ${hexBig(gva)}..${hexBig(last - 1n)} is not ${what}`);
    }
  }
  if (e.problems.count !== before) return;
  const [gvaLo, gvaHi] = split(gva);
  const [valueLo, valueHi] = split(value);
  e.emit(opcode, path, gvaLo, gvaHi, size, stride, valueLo, valueHi);
}

function resolveMsr(msr: number | string, path: string, e: Emitter): number | undefined {
  if (typeof msr === "number") return msr;
  try {
    return msrIndex(msr);
  } catch {
    const names = MSR_LIST.map((m) => m.name);
    e.problems.add(
      path,
      `unknown MSR name ${quoteText(msr)}${didYouMeanSuffix(clipText(msr).toUpperCase(), names)}; give its index instead`,
    );
    return undefined;
  }
}

/** Emits one step; returns how many non-loop operations it executes (loops multiply). */
function emitStep(step: StepSpec, path: string, e: Emitter): number {
  if (typeof step !== "object" || step === null || Array.isArray(step)) {
    e.problems.add(path, "expected a step: a mapping with one operation key");
    return 0;
  }
  const keys = Object.keys(step).filter((key) => (step as Record<string, unknown>)[key] !== undefined);
  if (keys.length !== 1) {
    e.problems.add(
      path,
      `a step has exactly one operation key, got ${keys.length === 0 ? "none" : listKeys(keys)}`,
    );
    return 0;
  }
  const name = keys[0] as string;
  if (!isStepName(name)) {
    e.problems.add(
      path,
      `unknown operation ${quoteText(name)}${didYouMeanSuffix(clipText(name), STEP_NAMES)}`,
    );
    return 0;
  }
  const info = STEP_TABLE[name];
  const stepPath = join(path, name);
  const raw = (step as Record<string, unknown>)[name];
  const operands = (raw === null ? {} : raw) as Record<string, unknown>;
  const sink: WorkloadProblem[] = [];
  if (!checkFields(operands, info.fields, stepPath, sink)) {
    for (const problem of sink) e.problems.add(problem.path, problem.message);
    return 0;
  }
  const { setup } = e.resolved;
  switch (name as StepName) {
    case "read":
      emitMemory(OP.READ, name, operands, stepPath, e);
      return 1;
    case "write":
      emitMemory(OP.WRITE, name, operands, stepPath, e);
      return 1;
    case "fetch":
      emitMemory(OP.FETCH, name, operands, stepPath, e);
      return 1;
    case "cpuid":
      e.emit(OP.CPUID, stepPath, operands.leaf as number, (operands.subleaf as number | undefined) ?? 0);
      return 1;
    case "vmcall":
      e.emit(OP.VMCALL, stepPath, (operands.nr as number | undefined) ?? 0);
      return 1;
    case "movToCr0": {
      const value = checkCr0Value(
        toBig(operands.value as U64),
        join(stepPath, "value"),
        setup.pagingMode,
        e.problems,
      );
      if (value === undefined) return 1;
      const mode = pagingModeOf(value, setup.cr4 % 2 ** 32, setup.efer);
      if (mode !== setup.pagingMode) {
        e.problems.add(
          join(stepPath, "value"),
          `would switch paging from ${pagingNameOf(setup.pagingMode)} to ${pagingNameOf(mode)}, which a workload cannot do (its address spaces are built for one mode)`,
        );
        return 1;
      }
      e.emit(OP.MOV_TO_CR0, stepPath, value, 0, 0, 0);
      return 1;
    }
    case "movToCr4": {
      const value = checkCr4Value(
        toBig(operands.value as U64),
        join(stepPath, "value"),
        setup.pagingMode,
        e.problems,
      );
      if (value === undefined) return 1;
      const lo = value % 2 ** 32;
      const mode = pagingModeOf(setup.cr0, lo, setup.efer);
      if (mode !== setup.pagingMode) {
        e.problems.add(
          join(stepPath, "value"),
          `would switch paging from ${pagingNameOf(setup.pagingMode)} to ${pagingNameOf(mode)}, which a workload cannot do (in IA-32e mode it is a #GP; SDM Vol. 2B MOV to CR4)`,
        );
        return 1;
      }
      if ((lo & CR4.PCIDE) !== 0) e.pcideEverSet = true;
      e.emit(OP.MOV_TO_CR4, stepPath, lo, Math.floor(value / 2 ** 32), 0, 0);
      return 1;
    }
    case "movToCr3": {
      const given = ["value", "space", "reload"].filter(
        (key) => operands[key] !== undefined && operands[key] !== false,
      );
      if (given.length !== 1) {
        e.problems.add(
          stepPath,
          `give exactly one of value, space or reload: true${given.length > 1 ? ` (got ${given.join(", ")})` : ""}`,
        );
        return 1;
      }
      let flags = operands.noFlush === true ? CR3_FLAG.NO_FLUSH : 0;
      if (operands.noFlush === true) e.noFlushPaths.push(join(stepPath, "noFlush"));
      let lo = 0;
      let hi = 0;
      let space = 0;
      if (operands.value !== undefined) {
        const value = toBig(operands.value as U64);
        if (value >> 63n === 1n) {
          e.problems.add(
            join(stepPath, "value"),
            `${hexBig(value)} sets bit 63: that is the no-flush bit, write noFlush: true`,
          );
          return 1;
        }
        // The CR3 value itself, then against this machine: MAXPHYADDR and the guest's memory.
        e.physicalEnd ??= guestPhysicalEnd(setup);
        const problem =
          checkCr3Value(value, setup.pagingMode) ?? literalCr3Problem(value, setup, e.physicalEnd);
        if (problem !== undefined) {
          e.problems.add(join(stepPath, "value"), problem);
          return 1;
        }
        [lo, hi] = split(value);
      } else if (operands.space !== undefined) {
        if (setup.pagingMode === PAGING_MODE.NONE) {
          e.problems.add(join(stepPath, "space"), "paging is none: there are no address spaces");
          return 1;
        }
        const index = resolveSpaceRef(
          operands.space as string | number,
          setup.addressSpaces,
          join(stepPath, "space"),
          e.problems,
        );
        if (index === undefined) return 1;
        flags |= CR3_FLAG.SPACE;
        space = index;
      } else flags |= CR3_FLAG.RELOAD;
      e.emit(OP.MOV_TO_CR3, stepPath, lo, hi, flags, space);
      return 1;
    }
    case "movFromCr0":
      e.emit(OP.MOV_FROM_CR0, stepPath);
      return 1;
    case "movFromCr3":
      e.emit(OP.MOV_FROM_CR3, stepPath);
      return 1;
    case "movFromCr4":
      e.emit(OP.MOV_FROM_CR4, stepPath);
      return 1;
    case "wrmsr": {
      const index = resolveMsr(operands.msr as number | string, join(stepPath, "msr"), e);
      if (index === undefined) return 1;
      const [lo, hi] = split(toBig(operands.value as U64));
      e.emit(OP.WRMSR, stepPath, index, lo, hi);
      return 1;
    }
    case "rdmsr": {
      const index = resolveMsr(operands.msr as number | string, join(stepPath, "msr"), e);
      if (index !== undefined) e.emit(OP.RDMSR, stepPath, index);
      return 1;
    }
    case "invlpg": {
      const gva = toBig(operands.gva as U64);
      const stride = (operands.stride as number | undefined) ?? 0;
      const { ok, last } = checkStride(stride, gva, 1, stepPath, e);
      if (!ok) return 1;
      if (last > TWO_64) {
        e.problems.add(join(stepPath, "gva"), `${hexBig(gva)} plus the stride runs past 2^64`);
        return 1;
      }
      if (!isLongMode(setup.pagingMode) && last > TWO_32) {
        e.problems.add(
          join(stepPath, "gva"),
          `${hexBig(gva)}..${hexBig(last - 1n)} does not fit: ${canonicalRule(setup.pagingMode)}`,
        );
        return 1;
      }
      const [lo, hi] = split(gva);
      e.emit(OP.INVLPG, stepPath, lo, hi, 0, stride);
      return 1;
    }
    case "in":
    case "out": {
      const port = operands.port as number;
      const size = operands.size as number;
      const value = (operands.value as number | undefined) ?? 0;
      if (port + size > 0x10000) {
        e.problems.add(
          join(stepPath, "port"),
          `a ${size}-byte access at port 0x${port.toString(16)} runs past 0xffff (the I/O address space is 64 KiB)`,
        );
        return 1;
      }
      if (!fitsInBytes(BigInt(value), size)) {
        e.problems.add(
          join(stepPath, "value"),
          `${formatNumber(value)} does not fit in a ${size}-byte access`,
        );
        return 1;
      }
      e.emit(name === "in" ? OP.IN : OP.OUT, stepPath, port, size, value);
      return 1;
    }
    case "hlt":
      e.emit(OP.HLT, stepPath);
      return 1;
    case "compute": {
      const [lo, hi] = split(BigInt(operands.cycles as number));
      e.emit(OP.COMPUTE, stepPath, lo, hi);
      return 1;
    }
    case "iteration":
      e.emit(OP.ITERATION, stepPath, e.label(operands.label as string));
      return 1;
    case "loop": {
      const count = operands.count as number;
      if (e.loopCounts.length >= MAX_LOOP_DEPTH) {
        e.problems.add(stepPath, `loops nest more than ${MAX_LOOP_DEPTH} deep`);
        // Not 0: the enclosing loops are not empty, and saying so would bury the one real problem.
        return 1;
      }
      const begin = e.emit(OP.LOOP_BEGIN, stepPath, count, 0, 0);
      e.loopCounts.push(count);
      e.maxDepth = Math.max(e.maxDepth, e.loopCounts.length);
      const body = emitSteps(operands.steps as readonly StepSpec[], join(stepPath, "steps"), e);
      e.loopCounts.pop();
      const end = e.emit(OP.LOOP_END, stepPath, 0, 0, begin);
      e.operands[begin * OPERAND_STRIDE + LOOP_SLOT.END] = end;
      if (count > 0 && body === 0) e.problems.add(join(stepPath, "steps"), "the loop body runs no operation");
      const executed = count * body;
      if (executed > MAX_OPERATIONS && !e.tooManyOperations) {
        e.tooManyOperations = true;
        e.problems.add(
          join(stepPath, "count"),
          `${formatNumber(count)} iterations of ${formatNumber(body)} operations run about 2^${Math.floor(Math.log2(executed))} operations, more than the 2^${Math.log2(MAX_OPERATIONS)} a run can finish`,
        );
      }
      return executed;
    }
  }
}

function emitSteps(steps: readonly StepSpec[], path: string, e: Emitter): number {
  let executed = 0;
  steps.forEach((step, i) => {
    executed += emitStep(step, `${path}[${i}]`, e);
  });
  return executed;
}

/**
 * Compiles a workload document. Throws `WorkloadBuildError` listing every problem (up to
 * `MAX_PROBLEMS`); never returns a partial program.
 */
export function compileWorkload(spec: WorkloadSpec): WorkloadProgram {
  const problems = new Problems();
  const name =
    typeof spec === "object" && spec !== null && typeof spec.name === "string" ? spec.name : "(unnamed)";
  if (!checkFieldsInto(spec, WORKLOAD_FIELDS, "", problems))
    throw new WorkloadBuildError(name, problems.list);
  const resolved = resolveSetup(spec, problems);
  if (resolved === undefined) throw new WorkloadBuildError(name, problems.list);
  const e = new Emitter(resolved, problems);
  const executed = emitSteps(spec.steps, "steps", e);
  if (problems.count === 0 && executed === 0) problems.add("steps", "the workload runs no operation");
  if (executed > MAX_OPERATIONS && !e.tooManyOperations) {
    problems.add(
      "steps",
      `the workload runs about 2^${Math.floor(Math.log2(executed))} operations, more than the 2^${Math.log2(MAX_OPERATIONS)} a run can finish`,
    );
  }
  if (!e.pcideEverSet) {
    for (const path of e.noFlushPaths) {
      problems.add(
        path,
        "noFlush needs CR4.PCIDE, which neither setup.cr4 nor any movToCr4 sets (bit 63 is reserved otherwise; SDM 4.10.4.1)",
      );
    }
  }
  if (problems.count > 0) throw new WorkloadBuildError(name, problems.list);
  return Object.freeze({
    name,
    description: spec.description ?? "",
    setup: resolved.setup,
    length: e.opcodes.length,
    opcodes: Uint8Array.from(e.opcodes),
    operands: Uint32Array.from(e.operands),
    labels: Object.freeze([...e.labels]),
    maxLoopDepth: e.maxDepth,
    stepPaths: Object.freeze([...e.stepPaths]),
  });
}
