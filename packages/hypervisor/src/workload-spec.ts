/**
 * The document form of a workload: what a YAML/JSON workload file holds and what the TypeScript
 * builder produces. It is plain data (numbers, strings, booleans, arrays, objects; BigInt only for
 * 64-bit values above 2^53) and is compiled into a `WorkloadProgram` by `compileWorkload`.
 *
 * Every key and every operation is described once, in the field tables below. The builder, the
 * compiler, the file validator and the exported JSON Schema all read these tables, so they cannot
 * disagree about a name, a default or a range.
 *
 * A document:
 * ```yaml
 * name: toggle_cr0_wp                 # letters, digits and _ . + -
 * description: grsecurity-style kernel W^X
 * setup:                              # every key optional
 *   level: 2                          # 1, 2 or 3 (default 2)
 *   paging: 4-level                   # none | 32-bit | pae | 4-level | 5-level (default 4-level)
 *   memory: 16MiB                     # bytes, or with a B/KiB/MiB/GiB/TiB suffix (default 16MiB)
 *   cpl: 0                            # default 0
 *   cr0: 0x80050033                   # defaults follow the paging mode
 *   addressSpaces:                    # default: one space identity-mapping all memory
 *     - name: kernel
 *       pcid: 0
 *       mappings:
 *         - { gva: 0x400000, pages: 16, pageSize: 4K, writable: false }
 *   initialAddressSpace: kernel       # name or index (default 0)
 * steps:
 *   - loop:
 *       count: 1000
 *       steps:
 *         - iteration: wp-toggle
 *         - movToCr0: 0x80040033
 *         - write: { gva: 0x400000, size: 8, value: 1 }
 *         - movToCr0: 0x80050033
 * ```
 * Integers are numbers (`count: 2`, `cr0: 0x80050033` in YAML; `1e3` is the number 1000 and is
 * accepted, `1.5` is not an integer and is refused). Strings stand for integers only in the forms a
 * number cannot take: `"0x…"`, `"0o…"`, `"0b…"` (JSON has no hex numbers) and `_` separators
 * (`0x8000_0000_0000_0000`, `1_000_000`). A plain decimal in quotes (`count: "2"`) is refused, like
 * any string where a number is required. In JSON, write 64-bit values above 2^53 as `"0x…"` strings
 * if other tools read the file (this loader reads big JSON numbers exactly).
 */
import type { Cpl, WorkloadLevel } from "./workload-ops";

/** A 64-bit unsigned value: a number when below 2^53, else a BigInt. */
export type U64 = number | bigint;

export const PAGING_NAMES = ["none", "32-bit", "pae", "4-level", "5-level"] as const;
export type PagingName = (typeof PAGING_NAMES)[number];

export const PAGE_SIZE_NAMES = ["4K", "2M", "4M", "1G"] as const;
export type PageSizeName = (typeof PAGE_SIZE_NAMES)[number];

export type AccessSize = 1 | 2 | 4 | 8;
export type IoSize = 1 | 2 | 4;

export interface MappingSpec {
  readonly gva: U64;
  readonly pages: number;
  readonly pageSize?: PageSizeName;
  readonly gpa?: number;
  readonly writable?: boolean;
  readonly user?: boolean;
  readonly executable?: boolean;
}

export interface AddressSpaceSpec {
  readonly name: string;
  readonly pcid?: number;
  readonly mappings: readonly MappingSpec[];
}

export interface SetupSpec {
  readonly level?: WorkloadLevel;
  readonly paging?: PagingName;
  /** Bytes, or a size string such as "16MiB". */
  readonly memory?: number | string;
  readonly cpl?: Cpl;
  readonly cr0?: U64;
  readonly cr4?: U64;
  readonly efer?: U64;
  readonly addressSpaces?: readonly AddressSpaceSpec[];
  /** Name or index of the space loaded in CR3 at start. */
  readonly initialAddressSpace?: string | number;
}

export interface MemoryAccessSpec {
  readonly gva: U64;
  readonly size?: AccessSize;
  readonly stride?: number;
}
export interface WriteSpec extends MemoryAccessSpec {
  readonly value?: U64;
}
export interface Cr3Spec {
  readonly value?: U64;
  /** Name or index of an address space. */
  readonly space?: string | number;
  readonly reload?: boolean;
  readonly noFlush?: boolean;
}
export type NoOperands = Readonly<Record<string, never>>;

/** One step: an object with exactly one key, the operation name. */
export type StepSpec =
  | { readonly read: MemoryAccessSpec }
  | { readonly write: WriteSpec }
  | { readonly fetch: MemoryAccessSpec }
  | { readonly cpuid: { readonly leaf: number; readonly subleaf?: number } }
  | { readonly vmcall: { readonly nr?: number } }
  | { readonly movToCr0: { readonly value: U64 } }
  | { readonly movToCr3: Cr3Spec }
  | { readonly movToCr4: { readonly value: U64 } }
  | { readonly movFromCr0: NoOperands }
  | { readonly movFromCr3: NoOperands }
  | { readonly movFromCr4: NoOperands }
  | { readonly wrmsr: { readonly msr: number | string; readonly value: U64 } }
  | { readonly rdmsr: { readonly msr: number | string } }
  | { readonly invlpg: { readonly gva: U64; readonly stride?: number } }
  | { readonly in: { readonly port: number; readonly size: IoSize } }
  | { readonly out: { readonly port: number; readonly size: IoSize; readonly value?: number } }
  | { readonly hlt: NoOperands }
  | { readonly compute: { readonly cycles: number } }
  | { readonly loop: { readonly count: number; readonly steps: readonly StepSpec[] } }
  | { readonly iteration: { readonly label: string } };

export interface WorkloadSpec {
  readonly name: string;
  readonly description?: string;
  readonly setup?: SetupSpec;
  readonly steps: readonly StepSpec[];
}

// ---------------------------------------------------------------------------------------------
// Field tables
// ---------------------------------------------------------------------------------------------

/** What a field holds. Leaf kinds are checked by `checkLeaf`; object, list and steps are recursive. */
export type FieldKind =
  | { readonly kind: "int"; readonly min: number; readonly max: number }
  | { readonly kind: "u64" }
  | { readonly kind: "choice"; readonly values: readonly number[] }
  | { readonly kind: "enum"; readonly values: readonly string[] }
  | { readonly kind: "bool" }
  | { readonly kind: "text" }
  | { readonly kind: "name" }
  | { readonly kind: "label" }
  | { readonly kind: "bytes"; readonly min: number; readonly max: number }
  | { readonly kind: "msr" }
  | { readonly kind: "space" }
  | { readonly kind: "object"; readonly fields: FieldTable }
  | { readonly kind: "list"; readonly fields: FieldTable }
  | { readonly kind: "steps" };

export interface FieldInfo {
  readonly type: FieldKind;
  readonly required?: boolean;
  readonly description: string;
}
export type FieldTable = Readonly<Record<string, FieldInfo>>;

const U32_MAX = 0xffffffff;
/** Largest integer a double holds exactly. */
const SAFE_MAX = Number.MAX_SAFE_INTEGER;
/** Guest memory is limited to 64 TiB (far below MAXPHYADDR = 52; the runtime uses sparse memory). */
export const MAX_MEMORY_BYTES = 2 ** 46;
/** Loops nest at most this deep. */
export const MAX_LOOP_DEPTH = 32;

const int = (min: number, max: number): FieldKind => ({ kind: "int", min, max });
const u32 = int(0, U32_MAX);
const u64: FieldKind = { kind: "u64" };
const bool: FieldKind = { kind: "bool" };

export const MAPPING_FIELDS: FieldTable = {
  gva: {
    type: u64,
    required: true,
    description: "first guest-virtual address, aligned to pageSize (64-bit canonical form)",
  },
  pages: { type: int(1, 2 ** 32), required: true, description: "number of pages" },
  pageSize: {
    type: { kind: "enum", values: PAGE_SIZE_NAMES },
    description:
      "page size: 4K (default), 2M (PAE/4-level/5-level), 4M (32-bit paging with CR4.PSE), 1G (4/5-level)",
  },
  gpa: {
    type: int(0, MAX_MEMORY_BYTES - 1),
    description: "guest-physical address of the first page, aligned to pageSize (default: the same as gva)",
  },
  writable: { type: bool, description: "R/W set in the leaf entries (default true)" },
  user: { type: bool, description: "U/S set in the leaf entries (default: true when cpl is 3)" },
  executable: { type: bool, description: "execute allowed, XD clear (default true)" },
};

export const ADDRESS_SPACE_FIELDS: FieldTable = {
  name: {
    type: { kind: "name" },
    required: true,
    description: "name used by initialAddressSpace and movToCr3.space",
  },
  pcid: {
    type: int(0, 0xfff),
    description: "PCID loaded with this space's CR3 (needs CR4.PCIDE; default 0)",
  },
  mappings: {
    type: { kind: "list", fields: MAPPING_FIELDS },
    required: true,
    description: "mapped GVA ranges",
  },
};

export const SETUP_FIELDS: FieldTable = {
  level: {
    type: { kind: "choice", values: [1, 2, 3] },
    description:
      "nesting level the guest runs at: 1 = guest of L0, 2 = nested guest of L1 (default), 3 = guest of L2",
  },
  paging: {
    type: { kind: "enum", values: PAGING_NAMES },
    description: "guest paging mode (default 4-level)",
  },
  memory: {
    type: { kind: "bytes", min: 4096, max: MAX_MEMORY_BYTES },
    description:
      "guest-physical memory size: bytes or a string like 16MiB (multiple of 4 KiB; default 16MiB)",
  },
  cpl: { type: { kind: "choice", values: [0, 1, 2, 3] }, description: "current privilege level (default 0)" },
  cr0: {
    type: u64,
    description: "initial CR0 (default follows paging: 0x80050033 with paging, 0x31 without)",
  },
  cr4: { type: u64, description: "initial CR4 (default follows paging)" },
  efer: {
    type: u64,
    description: "initial IA32_EFER (default follows paging: 0xd01 for 4-level and 5-level)",
  },
  addressSpaces: {
    type: { kind: "list", fields: ADDRESS_SPACE_FIELDS },
    description: "page-table layouts; default: one space identity-mapping all memory (none without paging)",
  },
  initialAddressSpace: { type: { kind: "space" }, description: "name or index of the space in CR3 at start" },
};

const MEMORY_ACCESS_FIELDS: FieldTable = {
  gva: { type: u64, required: true, description: "guest-virtual address, naturally aligned to size" },
  size: { type: { kind: "choice", values: [1, 2, 4, 8] }, description: "bytes accessed (default 8)" },
  stride: {
    type: u32,
    description: "bytes added per iteration of the innermost enclosing loop (a multiple of size; default 0)",
  },
};

/** How each operation is written. `shorthand` names the field a scalar value stands for (`cpuid: 1`). */
export interface StepInfo {
  readonly description: string;
  readonly fields: FieldTable;
  readonly shorthand?: string;
}

export const STEP_TABLE = {
  read: { description: "data read at a GVA", fields: MEMORY_ACCESS_FIELDS, shorthand: "gva" },
  write: {
    description: "data write at a GVA",
    fields: {
      ...MEMORY_ACCESS_FIELDS,
      value: { type: u64, description: "value written, truncated to size (default 0)" },
    },
    shorthand: "gva",
  },
  fetch: { description: "instruction fetch at a GVA", fields: MEMORY_ACCESS_FIELDS, shorthand: "gva" },
  cpuid: {
    description: "CPUID (always exits)",
    fields: {
      leaf: { type: u32, required: true, description: "EAX" },
      subleaf: { type: u32, description: "ECX (default 0)" },
    },
    shorthand: "leaf",
  },
  vmcall: {
    description: "VMCALL hypercall (always exits)",
    fields: { nr: { type: u32, description: "hypercall number in RAX (default 0, as kvm-unit-tests)" } },
    shorthand: "nr",
  },
  movToCr0: {
    description: "MOV to CR0",
    fields: { value: { type: u64, required: true, description: "new CR0" } },
    shorthand: "value",
  },
  movToCr3: {
    description: "MOV to CR3: a literal value, an address space's root, or a reload of the current CR3",
    fields: {
      value: { type: u64, description: "literal CR3 value (bit 63 must be clear: use noFlush)" },
      space: { type: { kind: "space" }, description: "name or index of the address space to switch to" },
      reload: { type: bool, description: "load the current CR3 again (flushes non-global TLB entries)" },
      noFlush: { type: bool, description: "set operand bit 63 (CR4.PCIDE = 1): keep the PCID's TLB entries" },
    },
  },
  movToCr4: {
    description: "MOV to CR4",
    fields: { value: { type: u64, required: true, description: "new CR4" } },
    shorthand: "value",
  },
  movFromCr0: { description: "MOV from CR0", fields: {} },
  movFromCr3: { description: "MOV from CR3", fields: {} },
  movFromCr4: { description: "MOV from CR4", fields: {} },
  wrmsr: {
    description: "WRMSR",
    fields: {
      msr: { type: { kind: "msr" }, required: true, description: "MSR index or SDM name (IA32_TSC_ADJUST)" },
      value: { type: u64, required: true, description: "EDX:EAX" },
    },
  },
  rdmsr: {
    description: "RDMSR",
    fields: { msr: { type: { kind: "msr" }, required: true, description: "MSR index or SDM name" } },
    shorthand: "msr",
  },
  invlpg: {
    description: "INVLPG",
    fields: {
      gva: { type: u64, required: true, description: "guest-virtual address" },
      stride: { type: u32, description: "bytes added per iteration of the innermost enclosing loop" },
    },
    shorthand: "gva",
  },
  in: {
    description: "IN from an I/O port",
    fields: {
      port: { type: int(0, 0xffff), required: true, description: "I/O port" },
      size: {
        type: { kind: "choice", values: [1, 2, 4] },
        required: true,
        description: "bytes (inb/inw/inl)",
      },
    },
  },
  out: {
    description: "OUT to an I/O port",
    fields: {
      port: { type: int(0, 0xffff), required: true, description: "I/O port" },
      size: {
        type: { kind: "choice", values: [1, 2, 4] },
        required: true,
        description: "bytes (outb/outw/outl)",
      },
      value: { type: u32, description: "value written, fitting in size bytes (default 0)" },
    },
  },
  hlt: { description: "HLT", fields: {} },
  compute: {
    description: "guest work that causes no exit",
    fields: { cycles: { type: int(0, SAFE_MAX), required: true, description: "cycles" } },
    shorthand: "cycles",
  },
  loop: {
    description: "repeat steps",
    fields: {
      count: { type: u32, required: true, description: "iterations (0 skips the body)" },
      steps: { type: { kind: "steps" }, required: true, description: "loop body" },
    },
  },
  iteration: {
    description: "marks the start of one iteration of the workload (for cycles per iteration)",
    fields: { label: { type: { kind: "label" }, required: true, description: "what one iteration is" } },
    shorthand: "label",
  },
} as const satisfies Readonly<Record<string, StepInfo>>;

export type StepName = keyof typeof STEP_TABLE;
export const STEP_NAMES = Object.keys(STEP_TABLE) as readonly StepName[];

/** Whether `name` is an operation: an own key of STEP_TABLE (not `toString`, `__proto__`…). */
export function isStepName(name: string): name is StepName {
  return Object.hasOwn(STEP_TABLE, name);
}

export const WORKLOAD_FIELDS: FieldTable = {
  $schema: { type: { kind: "text" }, description: "JSON Schema reference for editors (ignored)" },
  name: { type: { kind: "name" }, required: true, description: "workload name (letters, digits, _ . + -)" },
  description: { type: { kind: "text" }, description: "one line describing the workload" },
  setup: { type: { kind: "object", fields: SETUP_FIELDS }, description: "the guest's initial state" },
  steps: { type: { kind: "steps" }, required: true, description: "the program" },
};

/** The operation name of a step (its only key), or undefined when it does not have exactly one key. */
export function stepName(step: StepSpec): string | undefined {
  const keys = Object.keys(step);
  return keys.length === 1 ? keys[0] : undefined;
}

// ---------------------------------------------------------------------------------------------
// Leaf checks (shared by the builder, the compiler and the file validator)
// ---------------------------------------------------------------------------------------------

/** A number in the style of ranges in messages: decimal below 4096, hex from 0x1000 up. */
export function formatNumber(value: number | bigint): string {
  if (typeof value === "bigint") return value >= 0x1000n ? `0x${value.toString(16)}` : value.toString();
  if (!Number.isFinite(value) || !Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 0x1000
    ? `${value < 0 ? "-" : ""}0x${Math.abs(value).toString(16)}`
    : String(value);
}

/** Characters of a value or key a message shows; the rest is cut (a message names, it does not echo). */
export const MAX_SHOWN_CHARS = 64;

/** `text` cut to `MAX_SHOWN_CHARS` characters with "…" when longer. */
export function clipText(text: string): string {
  return text.length <= MAX_SHOWN_CHARS ? text : `${text.slice(0, MAX_SHOWN_CHARS)}…`;
}

/** `text` quoted as JSON for a message, cut to `MAX_SHOWN_CHARS` characters and its length given. */
export function quoteText(text: string): string {
  return text.length <= MAX_SHOWN_CHARS
    ? JSON.stringify(text)
    : `${JSON.stringify(clipText(text))} (${text.length} characters)`;
}

/**
 * A key as a path shows it: a plain name (letters, digits, `_`, `-`) as it is, any other key quoted
 * (and cut), so that blanks, quotes or invisible characters in a key cannot hide where a path begins.
 */
export function pathKey(key: string): string {
  return /^[A-Za-z_][\w-]*$/.test(key) ? clipText(key) : quoteText(key);
}

/** Keys for a message: the first five, each cut to `MAX_SHOWN_CHARS`, and how many when more. */
export function listKeys(keys: readonly string[]): string {
  const shown = 5;
  const first = keys.slice(0, shown).map(clipText).join(", ");
  return keys.length <= shown ? first : `${first}, … (${keys.length} keys)`;
}

/** How a value was written, for "got …" in messages. */
export function formatGot(value: unknown): string {
  if (typeof value === "string") return quoteText(value);
  if (typeof value === "number" || typeof value === "bigint") return clipText(formatNumber(value));
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return clipText(String(value));
}

/** "an integer in [0, 0xffffffff]" and the like: what a field expects. */
export function expectation(type: FieldKind): string {
  switch (type.kind) {
    case "int":
      return `an integer in [${formatNumber(type.min)}, ${formatNumber(type.max)}]`;
    case "u64":
      return "an integer in [0, 0xffffffffffffffff]";
    case "choice":
      return `one of ${type.values.join(", ")}`;
    case "enum":
      return `one of ${type.values.join(", ")}`;
    case "bool":
      return "true or false";
    case "text":
      return "a string";
    case "name":
      return "a name of letters, digits and _ . + - (at most 64 characters)";
    case "label":
      return "a non-empty string of at most 64 characters";
    case "bytes":
      return `a size in bytes in [${formatNumber(type.min)}, ${formatNumber(type.max)}], a multiple of 4096 (e.g. 4096, "16MiB")`;
    case "msr":
      return "an MSR index in [0, 0xffffffff] or an MSR name";
    case "space":
      return "an address-space name or index";
    case "object":
      return "a mapping";
    case "list":
      return "a list of mappings";
    case "steps":
      return "a list of steps";
  }
}

const NAME_PATTERN = /^[A-Za-z0-9_.+-]{1,64}$/;
const SIZE_PATTERN = /^\s*([0-9][0-9_]*)\s*(B|K|KB|KIB|M|MB|MIB|G|GB|GIB|T|TB|TIB)?\s*$/i;
const SIZE_UNIT: Readonly<Record<string, number>> = { B: 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/**
 * Parses a byte size: an integer, or a string with a binary unit (`16MiB`, `4K`, `1GiB`; K, KB and
 * KiB all mean 1024). Returns undefined when the text is not a size.
 */
export function parseByteSize(value: number | string): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) ? value : undefined;
  const integer = parseInteger(value);
  if (integer !== undefined) return integer <= BigInt(SAFE_MAX) ? Number(integer) : undefined;
  const match = SIZE_PATTERN.exec(value);
  if (match === null) return undefined;
  const unit = SIZE_UNIT[(match[2] ?? "B").charAt(0).toUpperCase()] ?? 1;
  const bytes = Number((match[1] ?? "").replace(/_/g, "")) * unit;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/**
 * Integer text a workload file may give as a string: `0x…`, `0o…` or `0b…`, or decimal with `_`
 * separators (each with at least one digit). Not a plain decimal: that is a number and is written
 * as one. The JSON Schema's string pattern for integers is this pattern's source, so the schema and
 * the loader accept the same strings.
 */
export const INTEGER_TEXT_PATTERN =
  /^\s*(0[xX][0-9a-fA-F_]*[0-9a-fA-F][0-9a-fA-F_]*|0[oO][0-7_]*[0-7][0-7_]*|0[bB][01_]*[01][01_]*|[0-9][0-9_]*_[0-9_]*)\s*$/;

/**
 * A size with a unit, as a workload file may give `memory` (`16MiB`, `4K`, `4096 B`; the unit is
 * required: a plain decimal is a number). The JSON Schema uses this pattern's source.
 */
export const SIZE_TEXT_PATTERN = /^\s*[0-9][0-9_]*\s*([BbKkMmGgTt]|[KkMmGgTt][Bb]|[KkMmGgTt][Ii][Bb])\s*$/;

/** A plain decimal integer (`"2"`, `" 16 "`) given as a string: a number in quotes. */
export const QUOTED_NUMBER_PATTERN = /^\s*[0-9]+\s*$/;

/** Whether `text` is a plain decimal integer (`QUOTED_NUMBER_PATTERN`). */
export function isQuotedNumber(text: string): boolean {
  return QUOTED_NUMBER_PATTERN.test(text);
}

/**
 * An integer given as a string in a workload file (`INTEGER_TEXT_PATTERN`), or undefined: a plain
 * decimal in quotes is not one (see `isQuotedNumber`).
 */
export function parseIntegerText(text: string): bigint | undefined {
  return INTEGER_TEXT_PATTERN.test(text) ? parseInteger(text) : undefined;
}

/** A size given as a string in a workload file: integer text or a size with a unit; else undefined. */
export function parseSizeText(text: string): number | undefined {
  return INTEGER_TEXT_PATTERN.test(text) || SIZE_TEXT_PATTERN.test(text) ? parseByteSize(text) : undefined;
}

/**
 * Parses integer text: decimal, 0x…, 0o…, 0b…, with `_` separators. Undefined when it is not one.
 * (Command-line parameters use it as it is; workload files give strings through `parseIntegerText`.)
 */
export function parseInteger(text: string): bigint | undefined {
  const trimmed = text.trim().replace(/_/g, "");
  if (!/^(0x[0-9a-f]+|0o[0-7]+|0b[01]+|[0-9]+)$/i.test(trimmed)) return undefined;
  return BigInt(trimmed.toLowerCase());
}

function inRange(value: number | bigint, min: number, max: number): boolean {
  if (typeof value === "bigint") return value >= BigInt(min) && value <= BigInt(max);
  return Number.isInteger(value) && value >= min && value <= max;
}

/**
 * Checks a leaf value (already converted from text) against its kind. Returns the problem text
 * (`expected …, got …`) or undefined. Object, list and steps kinds only check the container type.
 */
export function checkLeaf(type: FieldKind, value: unknown): string | undefined {
  const bad = () => `expected ${expectation(type)}, got ${formatGot(value)}`;
  switch (type.kind) {
    case "int":
      return typeof value === "number" && inRange(value, type.min, type.max) ? undefined : bad();
    case "u64":
      if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? undefined : bad();
      if (typeof value === "bigint") return value >= 0n && value < 1n << 64n ? undefined : bad();
      return bad();
    case "choice":
      return typeof value === "number" && type.values.includes(value) ? undefined : bad();
    case "enum":
      return typeof value === "string" && type.values.includes(value) ? undefined : bad();
    case "bool":
      return typeof value === "boolean" ? undefined : bad();
    case "text":
      return typeof value === "string" ? undefined : bad();
    case "name":
      return typeof value === "string" && NAME_PATTERN.test(value) ? undefined : bad();
    case "label":
      return typeof value === "string" && value.length > 0 && value.length <= 64 ? undefined : bad();
    case "bytes": {
      if (typeof value !== "number" && typeof value !== "string") return bad();
      const bytes = parseByteSize(value);
      if (bytes === undefined || bytes < type.min || bytes > type.max || bytes % 4096 !== 0) return bad();
      return undefined;
    }
    case "msr":
      if (typeof value === "string") return value.length > 0 ? undefined : bad();
      return typeof value === "number" && inRange(value, 0, U32_MAX) ? undefined : bad();
    case "space":
      if (typeof value === "string") return NAME_PATTERN.test(value) ? undefined : bad();
      return typeof value === "number" && inRange(value, 0, U32_MAX) ? undefined : bad();
    case "object":
      return typeof value === "object" && value !== null && !Array.isArray(value) ? undefined : bad();
    case "list":
    case "steps":
      return Array.isArray(value) ? undefined : bad();
  }
}

// ---------------------------------------------------------------------------------------------
// Document (JSON-safe) form
// ---------------------------------------------------------------------------------------------

/** A JSON value. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

function toJsonValue(value: unknown): JsonValue | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value === "boolean" || typeof value === "string") return value;
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return value <= BigInt(SAFE_MAX) ? Number(value) : `0x${value.toString(16)}`;
  if (Array.isArray(value)) return value.map((item) => toJsonValue(item) ?? null);
  if (typeof value === "object") {
    const out: Record<string, JsonValue> = {};
    for (const [key, item] of Object.entries(value)) {
      const converted = toJsonValue(item);
      if (converted !== undefined) out[key] = converted;
    }
    return out;
  }
  throw new TypeError(`cannot put a ${typeof value} in a workload document`);
}

/**
 * The workload as a JSON-safe document: BigInts above 2^53 become `0x…` strings, undefined fields
 * are dropped. `JSON.stringify` (or `yaml`'s `stringify`) of it is a valid workload file.
 */
export function workloadDocument(spec: WorkloadSpec): { readonly [key: string]: JsonValue } {
  return toJsonValue(spec) as { readonly [key: string]: JsonValue };
}

/** The workload as JSON text (a valid workload file). */
export function workloadToJson(spec: WorkloadSpec, indent = 2): string {
  return `${JSON.stringify(workloadDocument(spec), null, indent)}\n`;
}
