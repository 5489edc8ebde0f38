import type { PhysicalMemory } from "../physical-memory";

/**
 * Test oracle: a deliberately plain linear-address walk written straight from the SDM (Vol. 3A
 * 4.1.1 modes, 4.3 32-bit paging, 4.4 PAE, 4.5 4-/5-level paging, 4.6 access rights and
 * protection keys, 4.7 #PF error code, 4.8 accessed/dirty flags). It works on BigInt values and
 * raw register images, decides everything itself, and shares no code with the production walker
 * (`page-walk.ts`, `paging-context.ts`, `permission.ts`). Slow and readable on purpose.
 */

/** Raw architectural state the walk depends on. */
export interface ReferenceState {
  readonly cr0: bigint;
  readonly cr3: bigint;
  readonly cr4: bigint;
  readonly efer: bigint;
  readonly rflags: bigint;
  readonly pkru: bigint;
  readonly pkrs: bigint;
  /** The four PAE PDPTE registers (used only in PAE mode). */
  readonly pdptes: readonly bigint[];
  /** CPUID.80000008H:EAX[7:0]. */
  readonly maxPhysAddr: number;
  /** CPUID.01H:EDX.PSE-36. */
  readonly pse36: boolean;
  /** CPUID.80000001H:EDX.Page1GB. */
  readonly gbPages: boolean;
}

export interface ReferenceAccess {
  readonly kind: "read" | "write" | "fetch";
  readonly cpl: 0 | 1 | 2 | 3;
  /** An implicit supervisor-mode access (descriptor tables, TSS), whatever the CPL. */
  readonly implicit: boolean;
}

/**
 * When accessed/dirty flags are written:
 * - "hardware": SDM 4.8 — a paging-structure entry gets A when it is used to translate, i.e. a
 *   non-leaf entry as soon as the walk goes through it to the next level (the footnote to SDM
 *   6.15 "Interrupt 14": on a protection fault the PDE's A is set), the leaf (A, and D for a
 *   write) only when the access is allowed.
 * - "after-success": KVM's emulated walk (kvm: FNAME(update_accessed_dirty_bits)) — nothing on a
 *   fault; after a successful walk, A on every entry used and D on the leaf for a write. Whether
 *   an entry needs a write is decided on the value the walk read.
 * - "none": no writes.
 */
export type ReferenceAdPolicy = "none" | "hardware" | "after-success";

export type ReferenceMode = "none" | "32-bit" | "pae" | "4-level" | "5-level";

/** One entry the walk consulted: where it was (-1 for a PAE PDPTE register), its value, its level. */
export interface ReferenceEntry {
  readonly address: bigint;
  readonly value: bigint;
  readonly level: number;
}

/** Effective rights of a translation (SDM 4.6.1) and its protection key (SDM 4.6.2). */
export interface ReferenceRights {
  readonly writable: boolean;
  readonly user: boolean;
  readonly executable: boolean;
  /** 0 unless protection keys are in use (IA-32e paging with CR4.PKE or CR4.PKS). */
  readonly pkey: number;
}

interface OutcomeCommon {
  readonly mode: ReferenceMode;
  /** Entries consulted, top-down (a PAE PDPTE register first, with address -1). */
  readonly entries: readonly ReferenceEntry[];
  /** Entries whose A/D flags the walk wrote. */
  readonly adWrites: number;
}

export interface ReferenceSuccess extends OutcomeCommon, ReferenceRights {
  readonly ok: true;
  readonly pa: bigint;
  readonly pageSize: bigint;
  /** Level of the leaf (1 = PTE), 0 without paging. */
  readonly level: number;
  /** The leaf entry after any A/D update (0 without paging). */
  readonly leaf: bigint;
}

export interface ReferenceFault extends OutcomeCommon {
  readonly ok: false;
  readonly fault: "not-present" | "reserved" | "access-rights";
  readonly errorCode: number;
  /** Level of the entry that stopped the walk, or of the leaf for an access-rights fault. */
  readonly level: number;
  /** The translation's rights, for an access-rights fault. */
  readonly rights: ReferenceRights | null;
}

export type ReferenceOutcome = ReferenceSuccess | ReferenceFault;

// Error-code bits (SDM 4.7).
const EC_P = 1;
const EC_W = 2;
const EC_U = 4;
const EC_RSVD = 8;
const EC_ID = 16;
const EC_PK = 32;

// Entry bits (SDM Tables 4-4 to 4-20).
const P = 0;
const RW = 1;
const US = 2;
const A = 5;
const D = 6;
const PS = 7;
const XD = 63;

/** Bit `n` of `value`. */
function bit(value: bigint, n: number): boolean {
  return ((value >> BigInt(n)) & 1n) === 1n;
}

/** Bits `high:low` of `value`, shifted down. */
function bits(value: bigint, high: number, low: number): bigint {
  if (high < low) return 0n;
  return (value >> BigInt(low)) & ((1n << BigInt(high - low + 1)) - 1n);
}

/** A mask of bits `high:low` (empty when high < low). */
function mask(high: number, low: number): bigint {
  if (high < low) return 0n;
  return ((1n << BigInt(high - low + 1)) - 1n) << BigInt(low);
}

/** SDM 4.1.1, Table 4-1: the paging mode from CR0.PG, CR4.PAE, IA32_EFER.LME and CR4.LA57. */
export function referenceMode(state: ReferenceState): ReferenceMode {
  if (!bit(state.cr0, 31)) return "none";
  if (!bit(state.cr4, 5)) return "32-bit";
  if (!bit(state.efer, 8)) return "pae";
  return bit(state.cr4, 12) ? "5-level" : "4-level";
}

/**
 * SDM 4.4.1: MOV to CR3 in PAE mode loads the four PDPTEs and faults (#GP) if a present one has a
 * reserved bit: 2:1, 8:5, or 63:MAXPHYADDR. Returns the index of the first bad one, or -1.
 */
export function referenceBadPdpte(pdptes: readonly bigint[], maxPhysAddr: number): number {
  const reserved = mask(2, 1) | mask(8, 5) | mask(63, maxPhysAddr);
  for (let i = 0; i < pdptes.length; i++) {
    const e = pdptes[i]!;
    if (bit(e, P) && (e & reserved) !== 0n) return i;
  }
  return -1;
}

/** Reads one entry as a BigInt: 4 bytes in 32-bit paging, 8 otherwise. */
function readEntry(memory: PhysicalMemory, address: bigint, wide: boolean): bigint {
  const a = Number(address);
  const lo = BigInt(memory.read32(a));
  return wide ? lo | (BigInt(memory.read32(a + 4)) << 32n) : lo;
}

/**
 * Reserved bits of a present entry (SDM Tables 4-4..4-6 for 32-bit paging, 4-8..4-11 for PAE,
 * 4-14..4-20 for 4-/5-level paging). `large` is "bit 7 set" (meaningful only where bit 7 is PS).
 */
function reservedBitsSet(
  mode: ReferenceMode,
  level: number,
  entry: bigint,
  state: ReferenceState,
  nxe: boolean,
  pse: boolean,
): boolean {
  const m = state.maxPhysAddr;
  const ps = bit(entry, PS);
  if (mode === "32-bit") {
    // Only a 4-MiB PDE has reserved bits: 21:(M'-19), where bits 20:13 carry physical-address
    // bits M'-1:32 and M' = min(MAXPHYADDR, 40) with PSE-36, 32 without (SDM 4.3, Table 4-4).
    if (level === 2 && pse && ps) {
      const width = state.pse36 ? Math.min(m, 40) : 32;
      return (entry & mask(21, 13 + (width - 32))) !== 0n;
    }
    return false;
  }
  let reserved = 0n;
  if (!nxe) reserved |= 1n << 63n; // XD is reserved without IA32_EFER.NXE
  if (mode === "pae") {
    reserved |= mask(62, m); // PAE entries: bits 62:MAXPHYADDR (Tables 4-9..4-11)
    if (level === 2 && ps) reserved |= mask(20, 13); // 2-MiB page: 20:13
    return (entry & reserved) !== 0n;
  }
  reserved |= mask(51, m); // IA-32e entries: bits 51:MAXPHYADDR
  if (level >= 4) reserved |= 1n << 7n; // PML5E/PML4E: PS must be 0 (Tables 4-14, 4-15)
  if (level === 3 && ps) {
    // A PDPTE with PS=1 maps a 1-GiB page only where CPUID reports Page1GB; bit 7 is reserved
    // otherwise (Table 4-16). A 1-GiB page has bits 29:13 reserved.
    reserved |= state.gbPages ? mask(29, 13) : 1n << 7n;
  }
  if (level === 2 && ps) reserved |= mask(20, 13); // 2-MiB page (Table 4-18)
  return (entry & reserved) !== 0n;
}

/**
 * Walks `la` for `access` under `state`, reading (and, per `policy`, writing A/D flags in)
 * `memory`. The linear address is masked to the mode's width: 32 bits outside IA-32e mode, 48
 * with 4-level paging, 57 with 5-level paging.
 */
export function referenceWalk(
  memory: PhysicalMemory,
  state: ReferenceState,
  la: bigint,
  access: ReferenceAccess,
  policy: ReferenceAdPolicy,
): ReferenceOutcome {
  const mode = referenceMode(state);
  const write = access.kind === "write";
  const fetch = access.kind === "fetch";
  // SDM 4.6: CPL 3 accesses are user-mode unless implicit supervisor accesses.
  const userAccess = access.cpl === 3 && !access.implicit;

  if (mode === "none") {
    // Without paging (and hence outside IA-32e mode) linear addresses are 32-bit physical ones.
    return {
      ok: true,
      mode,
      pa: la & 0xffff_ffffn,
      pageSize: 4096n,
      level: 0,
      leaf: 0n,
      writable: true,
      user: true,
      executable: true,
      pkey: 0,
      entries: [],
      adWrites: 0,
    };
  }

  const m = state.maxPhysAddr;
  const wide = mode !== "32-bit";
  const longMode = mode === "4-level" || mode === "5-level";
  const nxe = wide && bit(state.efer, 11); // XD exists only in PAE and IA-32e paging (4.6.1)
  const pse = bit(state.cr4, 4);
  const wp = bit(state.cr0, 16);
  const smep = bit(state.cr4, 20);
  const smap = bit(state.cr4, 21);
  const pke = longMode && bit(state.cr4, 22);
  const pks = longMode && bit(state.cr4, 24);
  const ac = bit(state.rflags, 18);
  const address =
    mode === "32-bit" || mode === "pae"
      ? bits(la, 31, 0)
      : mode === "4-level"
        ? bits(la, 47, 0)
        : bits(la, 56, 0);

  const entries: ReferenceEntry[] = [];
  /** Memory entries used, with the value the walk read (for A/D writes). */
  const used: { address: bigint; value: bigint }[] = [];
  let adWrites = 0;

  // SDM 4.7: the error code describes the access (W/R, U/S, I/D) plus what went wrong.
  const errorCode = (extra: number): number => {
    let code = extra;
    if (write) code |= EC_W;
    if (userAccess) code |= EC_U;
    if (fetch && (smep || nxe)) code |= EC_ID;
    return code;
  };
  const fail = (
    fault: ReferenceFault["fault"],
    extra: number,
    level: number,
    rights: ReferenceRights | null,
  ): ReferenceFault => ({
    ok: false,
    mode,
    fault,
    errorCode: errorCode(extra),
    level,
    rights,
    entries,
    adWrites,
  });

  /** Sets flags in a memory entry (a locked read-modify-write of its low word). */
  const setFlags = (entryAddress: bigint, flags: bigint) => {
    const a = Number(entryAddress);
    const low = BigInt(memory.read32(a));
    memory.write32(a, Number((low | flags) & 0xffff_ffffn));
    adWrites++;
  };

  // The starting table and level (SDM 4.3, 4.4.1, 4.5).
  let table: bigint;
  let level: number;
  if (mode === "32-bit") {
    table = state.cr3 & mask(31, 12);
    level = 2;
  } else if (mode === "pae") {
    const index = Number(bits(address, 31, 30));
    const pdpte = state.pdptes[index] ?? 0n;
    entries.push({ address: -1n, value: pdpte, level: 3 });
    if (!bit(pdpte, P)) return fail("not-present", 0, 3, null);
    table = pdpte & mask(m - 1, 12);
    level = 2;
  } else {
    table = state.cr3 & mask(m - 1, 12);
    level = mode === "5-level" ? 5 : 4;
  }

  let writable = true;
  let user = true;
  let executeDisabled = false;
  let entry = 0n;
  for (;;) {
    let index: bigint;
    if (mode === "32-bit") index = level === 2 ? bits(address, 31, 22) : bits(address, 21, 12);
    else index = bits(address, 12 + 9 * level - 1, 12 + 9 * (level - 1));
    const entryAddress = table + index * (wide ? 8n : 4n);
    entry = readEntry(memory, entryAddress, wide);
    entries.push({ address: entryAddress, value: entry, level });
    used.push({ address: entryAddress, value: entry });

    if (!bit(entry, P)) return fail("not-present", 0, level, null);
    if (reservedBitsSet(mode, level, entry, state, nxe, pse))
      return fail("reserved", EC_P | EC_RSVD, level, null);

    // SDM 4.6.1: R/W and U/S of every entry controlling the translation; XD of any of them.
    writable &&= bit(entry, RW);
    user &&= bit(entry, US);
    if (nxe && bit(entry, XD)) executeDisabled = true;

    const leaf = level === 1 || (bit(entry, PS) && (mode === "32-bit" ? pse : level <= 3));
    if (leaf) break;
    if (policy === "hardware" && !bit(entry, A)) setFlags(entryAddress, 1n << BigInt(A));
    table = mode === "32-bit" ? entry & mask(31, 12) : entry & mask(m - 1, 12);
    level--;
  }

  // The physical address and page size (SDM Tables 4-4, 4-9, 4-16, 4-18 and friends).
  let pa: bigint;
  let pageSize: bigint;
  if (mode === "32-bit") {
    if (level === 2) {
      const width = state.pse36 ? Math.min(m, 40) : 32;
      pa =
        (bits(entry, 13 + (width - 32) - 1, 13) << 32n) | (bits(entry, 31, 22) << 22n) | bits(address, 21, 0);
      pageSize = 4n << 20n;
    } else {
      pa = (bits(entry, 31, 12) << 12n) | bits(address, 11, 0);
      pageSize = 4096n;
    }
  } else {
    const offsetBits = 12 + 9 * (level - 1);
    pa = (entry & mask(m - 1, offsetBits)) | bits(address, offsetBits - 1, 0);
    pageSize = 1n << BigInt(offsetBits);
  }

  // Protection keys (SDM 4.6.2): leaf bits 62:59 in IA-32e paging with CR4.PKE or CR4.PKS.
  const pkey = longMode && (pke || pks) ? Number(bits(entry, 62, 59)) : 0;
  const rights: ReferenceRights = { writable, user, executable: !executeDisabled, pkey };

  // Access rights (SDM 4.6.1).
  let denied = false;
  if (userAccess) {
    // User-mode accesses: only to user-mode addresses; writes need R/W=1 everywhere (CR0.WP is
    // irrelevant); fetches need XD=0 everywhere.
    if (!user) denied = true;
    else if (write && !writable) denied = true;
    else if (fetch && executeDisabled) denied = true;
  } else if (fetch) {
    // Supervisor-mode fetches: never from user-mode addresses with CR4.SMEP; XD applies.
    if (user && smep) denied = true;
    if (executeDisabled) denied = true;
  } else {
    // Supervisor-mode data accesses. To a user-mode address with CR4.SMAP: only explicit
    // accesses with RFLAGS.AC=1 (implicit ones never). Writes with CR0.WP=1 need R/W=1.
    if (user && smap && (access.implicit || !ac)) denied = true;
    if (write && wp && !writable) denied = true;
  }

  // Protection keys (SDM 4.6.2, and the PK bit of 4.7): data accesses only. PKRU governs user-mode
  // addresses (with CR4.PKE), IA32_PKRS supervisor-mode ones (with CR4.PKS). ADi forbids any data
  // access; WDi forbids writes by user-mode accesses, and by supervisor-mode ones if CR0.WP=1.
  let keyDenied = false;
  const keyRegister = user ? (pke ? state.pkru : null) : pks ? state.pkrs : null;
  if (!fetch && keyRegister !== null) {
    const accessDisable = bit(keyRegister, 2 * pkey);
    const writeDisable = bit(keyRegister, 2 * pkey + 1);
    if (accessDisable) keyDenied = true;
    if (writeDisable && write && (userAccess || wp)) keyDenied = true;
  }

  if (denied || keyDenied) {
    // SDM 6.15 footnote / 4.8: upper entries used so far already have A (hardware policy).
    return fail("access-rights", EC_P | (keyDenied ? EC_PK : 0), level, rights);
  }

  // The access is allowed: A/D flags (SDM 4.8).
  const leafFlags = (1n << BigInt(A)) | (write ? 1n << BigInt(D) : 0n);
  if (policy === "hardware") {
    const leafEntry = used[used.length - 1]!;
    if ((leafEntry.value & leafFlags) !== leafFlags) setFlags(leafEntry.address, leafFlags);
  } else if (policy === "after-success") {
    for (let i = 0; i < used.length; i++) {
      const flags = i === used.length - 1 ? leafFlags : 1n << BigInt(A);
      if ((used[i]!.value & flags) !== flags) setFlags(used[i]!.address, flags);
    }
  }
  const leafAddress = used[used.length - 1]!.address;
  const leaf = policy === "none" ? entry : readEntry(memory, leafAddress, wide);
  return { ok: true, mode, pa, pageSize, level, leaf, ...rights, entries, adWrites };
}
