import {
  ACCESS,
  AD_UPDATE,
  type AdUpdate,
  cpuFeatures,
  createPagingContext,
  loadPdptes,
  PAGING_MODE,
  PAGING_MODE_NAMES,
  PageWalker,
  type PagingContext,
  SparseMemory,
  WalkTrace,
} from "@nestvisor/x86-arch";
import { didYouMean } from "../framework/suggest";

/**
 * `nestvisor walk` scenarios: a CPU state, memory given as 64-bit `[address, value]` pairs, a
 * linear address and an access. One scenario runs one page walk the way the processor does it
 * (SDM 4.3–4.6: accessed flags set on the way down, dirty on a write to the leaf) and reports every
 * entry read, the effective rights, and the physical address or the #PF error code.
 *
 * The format is documented in apps/cli/README.md. Problems are reported as `ScenarioError`s naming
 * the field (`cpu.cr3`, `memory[2][1]`, `access.write`).
 */
export class ScenarioError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ScenarioError";
  }
}

export interface Scenario {
  readonly cr0: number;
  readonly cr3: number;
  readonly cr4: number;
  readonly efer: number;
  readonly rflags: number;
  readonly cpl: 0 | 1 | 2 | 3;
  readonly pkru: number;
  readonly pkrs: number;
  readonly maxPhysAddr: number;
  readonly memory: readonly (readonly [bigint, bigint])[];
  readonly va: bigint;
  readonly write: boolean;
  readonly fetch: boolean;
  readonly user: boolean;
  readonly implicit: boolean;
  readonly ad: AdUpdate;
}

const TOP_FIELDS = ["cpu", "memory", "va", "access", "ad"];
const CPU_FIELDS = ["cr0", "cr3", "cr4", "efer", "rflags", "cpl", "pkru", "pkrs", "maxPhysAddr"];
const ACCESS_FIELDS = ["write", "fetch", "user", "implicit"];
const AD_MODES: Readonly<Record<string, AdUpdate>> = {
  hardware: AD_UPDATE.HARDWARE,
  kvm: AD_UPDATE.AFTER_SUCCESS,
  none: AD_UPDATE.NONE,
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkFields(value: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new ScenarioError(
        `${path === "" ? "" : `${path}.`}${key}: unknown field${didYouMean(key, allowed)}; expected ${allowed.join(", ")}`,
      );
    }
  }
}

/** A 64-bit value given as a hex or decimal string, or as a non-negative safe integer. */
function u64(value: unknown, path: string): bigint {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0)
      throw new ScenarioError(
        `${path}: ${value} is not a non-negative integer below 2^53 (write larger values as "0x…" strings)`,
      );
    return BigInt(value);
  }
  if (typeof value === "string") {
    const text = value.trim().replace(/_/g, "");
    if (/^0x[0-9a-f]+$/i.test(text) || /^\d+$/.test(text)) {
      const big = BigInt(text);
      if (big >= 1n << 64n) throw new ScenarioError(`${path}: ${value} does not fit in 64 bits`);
      return big;
    }
  }
  throw new ScenarioError(`${path}: expected a number or a "0x…" string, got ${JSON.stringify(value)}`);
}

function register(cpu: Record<string, unknown>, key: string, fallback: bigint, bits: number): number {
  const value = key in cpu ? u64(cpu[key], `cpu.${key}`) : fallback;
  if (value >= 1n << BigInt(bits))
    throw new ScenarioError(`cpu.${key}: 0x${value.toString(16)} does not fit in ${bits} bits`);
  return Number(value);
}

function flagOf(access: Record<string, unknown>, key: string): boolean | undefined {
  const value = access[key];
  if (value === undefined) return undefined;
  if (typeof value !== "boolean")
    throw new ScenarioError(`access.${key}: expected true or false, got ${JSON.stringify(value)}`);
  return value;
}

/** Checks a parsed JSON scenario. */
export function parseScenario(input: unknown): Scenario {
  if (!isRecord(input))
    throw new ScenarioError("a scenario is a JSON object with cpu, memory, va and access");
  checkFields(input, TOP_FIELDS, "");
  const cpu = input.cpu ?? {};
  if (!isRecord(cpu)) throw new ScenarioError("cpu: expected an object");
  checkFields(cpu, CPU_FIELDS, "cpu");
  if (!("cr3" in cpu)) throw new ScenarioError("cpu.cr3: missing (the root of the walk)");
  const memoryInput = input.memory ?? [];
  if (!Array.isArray(memoryInput))
    throw new ScenarioError('memory: expected an array of ["0x…address", "0x…value"] pairs');
  const memory = memoryInput.map((pair, i): readonly [bigint, bigint] => {
    if (!Array.isArray(pair) || pair.length !== 2)
      throw new ScenarioError(`memory[${i}]: expected [address, value]`);
    const address = u64(pair[0], `memory[${i}][0]`);
    if (address % 4n !== 0n)
      throw new ScenarioError(`memory[${i}][0]: address 0x${address.toString(16)} is not 4-byte aligned`);
    if (address >= 1n << 52n)
      throw new ScenarioError(`memory[${i}][0]: address 0x${address.toString(16)} is beyond 52 bits`);
    return [address, u64(pair[1], `memory[${i}][1]`)];
  });
  if (!("va" in input)) throw new ScenarioError("va: missing (the linear address to translate)");
  const va = u64(input.va, "va");
  const access = input.access ?? {};
  if (!isRecord(access)) throw new ScenarioError("access: expected an object");
  checkFields(access, ACCESS_FIELDS, "access");
  const write = flagOf(access, "write") ?? false;
  const fetch = flagOf(access, "fetch") ?? false;
  const implicit = flagOf(access, "implicit") ?? false;
  if (write && fetch) throw new ScenarioError("access: write and fetch cannot both be true");
  if (implicit && fetch)
    throw new ScenarioError("access: an instruction fetch is never an implicit supervisor access");
  const cplValue = register(cpu, "cpl", 0n, 2);
  const cpl = cplValue as 0 | 1 | 2 | 3;
  const user = flagOf(access, "user") ?? (cpl === 3 && !implicit);
  if (user && implicit) throw new ScenarioError("access: an implicit supervisor access is not a user access");
  const maxPhysAddr = register(cpu, "maxPhysAddr", 46n, 8);
  if (maxPhysAddr < 32 || maxPhysAddr > 52)
    throw new ScenarioError(`cpu.maxPhysAddr: ${maxPhysAddr} is not in [32, 52]`);
  let ad: AdUpdate = AD_UPDATE.HARDWARE;
  if (input.ad !== undefined) {
    if (typeof input.ad !== "string" || !(input.ad in AD_MODES)) {
      throw new ScenarioError(
        `ad: expected one of ${Object.keys(AD_MODES).join(", ")}, got ${JSON.stringify(input.ad)}`,
      );
    }
    ad = AD_MODES[input.ad]!;
  }
  return {
    cr0: register(cpu, "cr0", 0x80000011n, 32),
    cr3: register(cpu, "cr3", 0n, 52),
    cr4: register(cpu, "cr4", 0x20n, 52),
    efer: register(cpu, "efer", 0x500n, 32),
    rflags: register(cpu, "rflags", 2n, 32),
    cpl,
    pkru: register(cpu, "pkru", 0n, 32),
    pkrs: register(cpu, "pkrs", 0n, 32),
    maxPhysAddr,
    memory,
    va,
    write,
    fetch,
    user,
    implicit,
    ad,
  };
}

export interface WalkEntry {
  /** Physical address of the entry, or null for a PAE PDPTE register. */
  readonly address: bigint | null;
  readonly value: bigint;
  readonly level: number;
}

export interface WalkOutcome {
  readonly mode: string;
  readonly entryBytes: 4 | 8;
  readonly fault: boolean;
  readonly errorCode: number;
  readonly pa: bigint | null;
  readonly pageSize: number;
  /** Effective rights (PAGE_ACCESS bits: 1 exec, 2 write, 4 user) of the leaf, when reached. */
  readonly pageAccess: number;
  readonly entries: readonly WalkEntry[];
  /** Entries the walk changed: address and new value. */
  readonly writes: readonly (readonly [bigint, bigint])[];
  readonly context: PagingContext;
}

function canonical(va: bigint, bits: number): boolean {
  const top = va >> BigInt(bits - 1);
  return top === 0n || top === (1n << BigInt(65 - bits)) - 1n;
}

/** Runs the walk of a checked scenario. */
export function runScenario(s: Scenario): WalkOutcome {
  const features = cpuFeatures({ maxPhysAddr: s.maxPhysAddr });
  const memory = new SparseMemory();
  for (const [address, value] of s.memory) {
    memory.write64(Number(address), Number(value & 0xffffffffn), Number(value >> 32n));
  }
  const base = {
    cr0: s.cr0,
    cr3: s.cr3,
    cr4: s.cr4,
    efer: s.efer,
    rflags: s.rflags,
    pkru: s.pkru,
    pkrs: s.pkrs,
  };
  let context = createPagingContext({ ...base, pdptes: [0, 0, 0, 0] }, features);
  if (context.mode === PAGING_MODE.PAE) {
    const load = loadPdptes(memory, s.cr3, features);
    if (!load.ok)
      throw new ScenarioError(
        `PDPTE ${load.badIndex} at CR3 has a reserved bit set: loading CR3 would #GP(0)`,
      );
    context = createPagingContext({ ...base, pdptes: load.pdptes }, features);
  }
  const wide = context.mode !== PAGING_MODE.BIT32;
  if (context.mode === PAGING_MODE.LEVEL4 && !canonical(s.va, 48))
    throw new ScenarioError(
      `va 0x${s.va.toString(16)} is not canonical for 4-level paging (a #GP, not a page fault)`,
    );
  if (context.mode === PAGING_MODE.LEVEL5 && !canonical(s.va, 57))
    throw new ScenarioError(
      `va 0x${s.va.toString(16)} is not canonical for 5-level paging (a #GP, not a page fault)`,
    );
  if (context.mode !== PAGING_MODE.LEVEL4 && context.mode !== PAGING_MODE.LEVEL5 && s.va >= 1n << 32n) {
    throw new ScenarioError(`va 0x${s.va.toString(16)} does not fit in 32 bits outside IA-32e mode`);
  }
  let access: number = ACCESS.READ;
  if (s.write) access |= ACCESS.WRITE;
  if (s.fetch) access |= ACCESS.FETCH;
  if (s.user) access |= ACCESS.USER;
  if (s.implicit) access |= ACCESS.IMPLICIT;
  const walker = new PageWalker(memory, { adUpdate: s.ad });
  const trace = new WalkTrace();
  const before = new Map<number, bigint>();
  const readEntry = (address: number) =>
    wide
      ? (BigInt(memory.read32(address + 4)) << 32n) | BigInt(memory.read32(address))
      : BigInt(memory.read32(address));
  // The walker records entries as it reads them; snapshot every candidate entry after, compare.
  const ok = walker.walk(context, Number(s.va & 0xffffffffn), Number(s.va >> 32n), access, trace);
  const entries: WalkEntry[] = trace.entries().map((e) => ({
    address: e.address < 0 ? null : BigInt(e.address),
    value: (BigInt(e.hi) << 32n) | BigInt(e.lo),
    level: e.level,
  }));
  for (const e of entries) if (e.address !== null) before.set(Number(e.address), e.value);
  const writes: (readonly [bigint, bigint])[] = [];
  for (const [address, value] of before) {
    const after = readEntry(address);
    if (after !== value) writes.push([BigInt(address), after]);
  }
  const r = walker.result;
  return {
    mode: PAGING_MODE_NAMES[context.mode],
    entryBytes: wide ? 8 : 4,
    fault: !ok,
    errorCode: ok ? 0 : r.errorCode,
    pa: ok ? BigInt(r.pa) : null,
    pageSize: r.pageSize,
    pageAccess: r.pageAccess,
    entries,
    writes,
    context,
  };
}

function hex(value: bigint | number): string {
  return `0x${BigInt(value).toString(16)}`;
}

/** The `--batch` output line of a walk (the issue's shape). */
export function batchResult(outcome: WalkOutcome): {
  fault: boolean;
  errorCode: string;
  pa: string | null;
  writes: string[][];
} {
  return {
    fault: outcome.fault,
    errorCode: hex(outcome.errorCode),
    pa: outcome.pa === null ? null : hex(outcome.pa),
    writes: outcome.writes.map(([address, value]) => [hex(address), hex(value)]),
  };
}
