import { decodeCpuRole, decodePageRole, type PageRoleFields, parseCpuRole } from "@nestvisor/mmu";
import {
  decodeExitReason,
  decodeFieldEncoding,
  describeCrAccess,
  describeInterruptionInfo,
  describeIo,
  EXIT_REASON,
  EXIT_REASON_FIELD,
  EXIT_REASONS,
  exitQualificationLayout,
  exitReasonInfo,
  exitReasonNumber,
  FIELD_TYPE_NAMES,
  FIELD_WIDTH_NAMES,
  fieldByEncoding,
  fieldByName,
  formatExitReason,
  formatFieldEncoding,
  SHADOW_FIELDS_RO,
  SHADOW_FIELDS_RO_V5_2,
  SHADOW_FIELDS_RW,
  SHADOW_FIELDS_RW_V5_2,
  VM_ENTRY_INTR_INFO_LAYOUT,
  VM_EXIT_INTR_INFO_LAYOUT,
  VM_INSTRUCTION_ERRORS,
  VMCS12_ERAS,
  vmcs12FieldOffset,
  vmInstructionErrorInfo,
  vmInstructionErrorNumber,
} from "@nestvisor/vmx";
import {
  decodeRegister,
  describeRegister,
  PFERR_LAYOUT,
  parseU64,
  type RegisterLayout,
  registerLayout,
  registerNames,
  summarizeEptViolation,
  summarizePageFaultErrorCode,
} from "@nestvisor/x86-arch";

/**
 * Error-code bits KVM 6.12 defines beyond the SDM's (kvm_host.h PFERR_*): the AMD nested-page-fault
 * bits SVM reports in exit_info_1, and KVM's own synthetic flags.
 */
const KVM_PFERR_BITS: readonly (readonly [number, string, string])[] = [
  [31, "GUEST_RMP", "AMD nested page fault: an RMP check failed (SEV-SNP)"],
  [32, "GUEST_FINAL", "AMD nested page fault on the final guest-physical address"],
  [33, "GUEST_PAGE", "AMD nested page fault during a guest page-table walk"],
  [34, "GUEST_ENC", "AMD nested page fault: the access was encrypted (SEV)"],
  [35, "GUEST_SIZEM", "AMD nested page fault: page-size mismatch with the RMP"],
  [36, "GUEST_VMPL", "AMD nested page fault: a VMPL permission check failed"],
  [48, "IMPLICIT_ACCESS", "KVM-synthetic: an implicit supervisor access KVM made"],
  [49, "PRIVATE_ACCESS", "KVM-synthetic: an access to private (guest_memfd) memory"],
];

import { UsageError } from "../framework/errors";
import { wrapText } from "../framework/help";
import { didYouMean } from "../framework/suggest";

/**
 * The decoders behind `nestvisor decode <kind> <value>`. Each returns the named fields as JSON
 * (KVM's field names where KVM has them, values as numbers, booleans or "0x…" strings) and the
 * lines a person reads.
 */
export interface Decoded {
  readonly json: Readonly<Record<string, unknown>>;
  readonly lines: readonly string[];
}

export interface DecodeOptions {
  /** Exit reason for `exit-qual`. */
  readonly reason?: string;
}

export interface DecodeKind {
  readonly name: string;
  readonly summary: string;
  /** What the value looks like, for help and errors. */
  readonly value: string;
  decode(text: string, options: DecodeOptions): Decoded;
}

function hex(value: bigint | number, digits = 0): string {
  return `0x${BigInt(value).toString(16).padStart(digits, "0")}`;
}

/** A number typed by a user: decimal, 0x…, 0b…, 0o…, `_` separators; within `bits` bits. */
export function parseValue(text: string, bits: 16 | 32 | 64, what: string): bigint {
  let value: bigint;
  try {
    value = parseU64(text);
  } catch (error) {
    // parseU64 throws a RangeError for a number wider than 64 bits, a SyntaxError for the rest.
    if (error instanceof RangeError)
      throw new UsageError(`${what} ${text.trim()} does not fit in ${bits} bits`);
    throw new UsageError(`${what} ${JSON.stringify(text)} is not a number (decimal, or hex with 0x)`);
  }
  if (value >= 1n << BigInt(bits))
    throw new UsageError(`${what} ${text.trim()} does not fit in ${bits} bits`);
  return value;
}

/** Hex digits with or without 0x (how KVM prints roles and trace fields). */
export function parseHex(text: string, bits: 32 | 64, what: string): bigint {
  const digits = text.trim().replace(/_/g, "").replace(/^0x/i, "");
  if (!/^[0-9a-f]+$/i.test(digits))
    throw new UsageError(`${what} ${JSON.stringify(text)} is not a hexadecimal number`);
  const value = BigInt(`0x${digits}`);
  if (value >= 1n << BigInt(bits))
    throw new UsageError(`${what} ${text.trim()} does not fit in ${bits} bits`);
  return value;
}

function layoutLines(layout: RegisterLayout, value: bigint): string[] {
  const digits = layout.width / 4;
  const lines = [`${layout.name} ${hex(value, digits)} (${layout.source})`];
  const fields = describeRegister(layout, value);
  const bitsWidth = Math.max(6, ...fields.map((f) => f.bits.length));
  const labels = fields.map(
    (f) =>
      `  ${f.bits.padEnd(bitsWidth)}  ${f.name}${typeof f.value === "boolean" ? "" : ` = ${hex(f.value)}`}`,
  );
  const column = Math.min(40, Math.max(...labels.map((l) => l.length)) + 2);
  fields.forEach((f, i) => {
    lines.push(...wrapText(f.description, 100, column, labels[i]!.padEnd(column)));
  });
  if (fields.length === 0) lines.push("  (no field set)");
  const undefinedBits = decodeRegister(layout, value).undefinedBits;
  if (undefinedBits !== 0n) lines.push(`  undefined or reserved bits set: ${hex(undefinedBits)}`);
  return lines;
}

function layoutJson(layout: RegisterLayout, value: bigint): Record<string, unknown> {
  const decoded = decodeRegister(layout, value);
  const fields: Record<string, boolean | number> = {};
  for (const f of layout.fields) fields[f.name] = decoded.fields[f.name]!;
  return { register: layout.name, value: hex(value), fields, undefinedBits: hex(decoded.undefinedBits) };
}

function registerKind(name: string, summary: string): DecodeKind {
  const layout = registerLayout(name);
  return {
    name,
    summary,
    value: `a ${layout.width}-bit value`,
    decode(text) {
      const value = parseValue(text, layout.width, name);
      return { json: layoutJson(layout, value), lines: layoutLines(layout, value) };
    },
  };
}

const ACCESS_LETTERS = ["---", "--x", "w--", "w-x", "-u-", "-ux", "wu-", "wux"];

function roleLines(word: number, f: PageRoleFields, indent = ""): string[] {
  const flags = (Object.entries(f) as [string, boolean | number][])
    .filter(([, v]) => typeof v === "boolean" && v)
    .map(([k]) => k);
  return [
    `${indent}level ${f.level}, quadrant ${f.quadrant}, access ${ACCESS_LETTERS[f.access] ?? f.access} (${f.access}), smm ${f.smm}`,
    `${indent}set: ${flags.length > 0 ? flags.join(", ") : "(none)"}`,
    `${indent}as kvm_mmu_get_page prints it: l${f.level} ${f.has_4_byte_gpte ? 4 : 8}-byte q${f.quadrant}${f.direct ? " direct" : ""} ${ACCESS_LETTERS[f.access]}${f.invalid ? " invalid" : ""} ${f.efer_nx ? "" : "!"}nxe ${f.ad_disabled ? "!" : ""}ad`,
    `${indent}word ${hex(word, 8)}`,
  ];
}

function fieldKind(): DecodeKind {
  return {
    name: "vmcs-field",
    summary: "a VMCS field by encoding or name: width, type, vmcs12 offset, shadowed RO/RW",
    value: "an encoding (0x6c16) or a name (GUEST_RIP)",
    decode(text) {
      const trimmed = text.trim();
      const byName = fieldByName(trimmed);
      let field = byName;
      let encoding: number;
      if (byName !== undefined) encoding = byName.encoding;
      else {
        if (!/^(0x[0-9a-f]+|\d+)$/i.test(trimmed)) {
          throw new UsageError(
            `${JSON.stringify(text)} is not a VMCS field name or encoding (e.g. GUEST_RIP or 0x681e)`,
          );
        }
        encoding = Number(parseValue(trimmed, 32, "VMCS field encoding"));
        field = fieldByEncoding(encoding);
      }
      const parts = decodeFieldEncoding(encoding);
      const offsets: Record<string, number | null> = {};
      for (const era of VMCS12_ERAS) {
        const offset = vmcs12FieldOffset(encoding, era);
        offsets[era] = offset < 0 ? null : offset;
      }
      const shadow = (ro: readonly { encoding: number }[], rw: readonly { encoding: number }[]) =>
        ro.some((s) => s.encoding === encoding)
          ? "RO"
          : rw.some((s) => s.encoding === encoding)
            ? "RW"
            : null;
      const shadowed = {
        "v6.12": shadow(SHADOW_FIELDS_RO, SHADOW_FIELDS_RW),
        "v5.2": shadow(SHADOW_FIELDS_RO_V5_2, SHADOW_FIELDS_RW_V5_2),
      };
      const json = {
        name: field?.name ?? null,
        title: field?.title ?? null,
        encoding: formatFieldEncoding(encoding),
        width: FIELD_WIDTH_NAMES[parts.width],
        type: FIELD_TYPE_NAMES[parts.type],
        accessType: parts.access === 1 ? "high" : "full",
        index: parts.index,
        group: field?.group ?? null,
        inKvmEnum: field?.inKvmEnum ?? false,
        vmcs12Offset: offsets,
        shadowed,
        reservedBits: hex(parts.reserved),
      };
      const offsetText = VMCS12_ERAS.map(
        (era) =>
          `${era}: ${offsets[era] === null ? "not stored" : `${offsets[era]} (${hex(offsets[era]!)})`}`,
      ).join(", ");
      const lines = [
        `${field?.name ?? "(not a catalogued field)"} ${formatFieldEncoding(encoding)}${field ? ` — ${field.title}` : ""}`,
        `  width ${FIELD_WIDTH_NAMES[parts.width]}, type ${FIELD_TYPE_NAMES[parts.type]}, index ${parts.index}, access ${json.accessType}${field ? `, group ${field.group}` : ""}`,
        `  vmcs12 offset: ${offsetText}`,
        `  shadow VMCS: v6.12 ${shadowed["v6.12"] ?? "not shadowed"}, v5.2 ${shadowed["v5.2"] ?? "not shadowed"}`,
      ];
      if (field !== undefined && !field.inKvmEnum)
        lines.push("  (an SDM field KVM's enum vmcs_field does not name)");
      if (parts.reserved !== 0) lines.push(`  reserved encoding bits set: ${hex(parts.reserved)}`);
      return { json, lines };
    },
  };
}

function exitReasonArgument(text: string): number {
  const byName = exitReasonNumber(text);
  if (byName !== undefined) return byName;
  if (/^(0x[0-9a-f]+|\d+)$/i.test(text.trim())) return Number(parseValue(text, 32, "exit reason"));
  const names = EXIT_REASONS.map((r) => r.name);
  throw new UsageError(
    `unknown exit reason ${JSON.stringify(text)}${didYouMean(text.toUpperCase(), names)}; give a name (EPT_VIOLATION) or a number`,
  );
}

export const DECODE_KINDS: readonly DecodeKind[] = [
  fieldKind(),
  {
    name: "role",
    summary: "a kvm_mmu_page_role word (hex, as KVM prints roles)",
    value: "a 32-bit hex word",
    decode(text) {
      const word = Number(parseHex(text, 32, "page role"));
      const f = decodePageRole(word);
      return {
        json: { word: hex(word, 8), ...f },
        lines: ["kvm_mmu_page_role", ...roleLines(word, f, "  ")],
      };
    },
  },
  {
    name: "cpu-role",
    summary: "a 64-bit kvm_cpu_role (ext in bits 63:32, base in 31:0; hex)",
    value: "a 64-bit hex value, e.g. 0x000000b9_00003704",
    decode(text) {
      let parsed: { base: number; ext: number };
      try {
        parsed = parseCpuRole(text);
      } catch {
        throw new UsageError(
          `${JSON.stringify(text)} is not a 64-bit hex cpu role (for example 0x000000b9_00003704)`,
        );
      }
      const role = decodeCpuRole(parsed.base, parsed.ext);
      const extSet = Object.entries(role.ext)
        .filter(([, v]) => v)
        .map(([k]) => k);
      return {
        json: {
          role: `0x${role.extWord.toString(16).padStart(8, "0")}_${role.baseWord.toString(16).padStart(8, "0")}`,
          base: { word: hex(role.baseWord, 8), ...role.base },
          ext: { word: hex(role.extWord, 8), ...role.ext },
        },
        lines: [
          "kvm_cpu_role",
          `  base (kvm_mmu_page_role):`,
          ...roleLines(role.baseWord, role.base, "    "),
          `  ext (kvm_mmu_extended_role) ${hex(role.extWord, 8)}: ${extSet.length > 0 ? extSet.join(", ") : "(none)"}`,
        ],
      };
    },
  },
  {
    name: "pferr",
    summary: "a #PF error code",
    value: "a number",
    decode(text) {
      const value = parseValue(text, 64, "#PF error code");
      const low = value & 0xffffffffn;
      const high = value >> 32n;
      const kvm = KVM_PFERR_BITS.filter(([bit]) => ((value >> BigInt(bit)) & 1n) !== 0n);
      const known = kvm.reduce((mask, [bit]) => mask | (1n << BigInt(bit)), 0n);
      const json = {
        ...layoutJson(PFERR_LAYOUT, low & ~known),
        summary: summarizePageFaultErrorCode(Number(low)),
        kvmBits: hex(high << 32n),
        kvmFlags: kvm.map(([, name]) => name),
      };
      const [, ...fieldLines] = layoutLines(PFERR_LAYOUT, low & ~known);
      const lines = [
        `${PFERR_LAYOUT.name} ${hex(value, high === 0n ? 8 : 16)} (${PFERR_LAYOUT.source}; bits 31–49: kvm_host.h)`,
        ...fieldLines,
        ...kvm.map(([bit, name, meaning]) => `  bit ${String(bit).padEnd(3)} ${name}  ${meaning}`),
        `  reads as: ${summarizePageFaultErrorCode(Number(low))}`,
      ];
      const unnamedHigh = (high << 32n) & ~known;
      if (unnamedHigh !== 0n)
        lines.push(`  bits 63:32 ${hex(unnamedHigh)}: not architectural and not a flag KVM 6.12 names`);
      return { json, lines };
    },
  },
  {
    name: "exit-reason",
    summary: "a VM-exit reason: number, full 32-bit field, or name",
    value: "a number or a name",
    decode(text) {
      const value = exitReasonArgument(text) >>> 0;
      const d = decodeExitReason(value);
      const info = exitReasonInfo(d.basic);
      // Bits 25:16 and 30 are reserved: the processor clears them, so a value with them set is suspect.
      const F = EXIT_REASON_FIELD;
      const defined =
        F.BASIC_MASK |
        F.BUS_LOCK_DETECTED |
        F.ENCLAVE_MODE |
        F.PENDING_MTF |
        F.FROM_VMX_ROOT |
        F.FAILED_VMENTRY;
      const reserved = (value & ~defined) >>> 0;
      const json = {
        value: hex(d.value, 8),
        basic: d.basic,
        name: d.name ?? null,
        kvmNamed: d.kvmNamed,
        description: info?.description ?? null,
        failedVmentry: d.failedVmentry,
        enclaveMode: d.enclaveMode,
        busLockDetected: d.busLockDetected,
        pendingMtf: d.pendingMtf,
        fromVmxRoot: d.fromVmxRoot,
        reservedBits: hex(reserved),
        qualification: exitQualificationLayout(d.basic)?.name ?? null,
      };
      const lines = [formatExitReason(value)];
      if (info !== undefined)
        lines.push(`  ${info.description}${info.kvm ? "" : " (KVM does not name this reason)"}`);
      else lines.push("  not a basic exit reason the SDM defines");
      if (reserved !== 0)
        lines.push(`  reserved bits set: ${hex(reserved, 8)} (bits 25:16 and 30 read as 0)`);
      if (json.qualification !== null)
        lines.push(
          `  exit qualification: ${json.qualification} (nestvisor decode exit-qual <value> --reason ${d.name ?? d.basic})`,
        );
      return { json, lines };
    },
  },
  {
    name: "exit-qual",
    summary: "an exit qualification, with --reason (CR_ACCESS, IO_INSTRUCTION, EPT_VIOLATION, …)",
    value: "a 64-bit value",
    decode(text, options) {
      if (options.reason === undefined)
        throw new UsageError(
          "exit-qual needs --reason <name or number> (the exit reason the qualification belongs to)",
        );
      const reason = exitReasonArgument(options.reason) & 0xffff;
      const value = parseValue(text, 64, "exit qualification");
      const name = exitReasonInfo(reason)?.name ?? String(reason);
      const layout = exitQualificationLayout(reason);
      if (layout === undefined) {
        const addressReasons: readonly number[] = [EXIT_REASON.INVLPG, EXIT_REASON.EPT_MISCONFIG];
        if (addressReasons.includes(reason)) {
          return {
            json: { reason: name, value: hex(value), linearOrPhysicalAddress: hex(value) },
            lines: [`${name} qualification ${hex(value)}: the address itself`],
          };
        }
        const known = EXIT_REASONS.filter((r) => exitQualificationLayout(r.number) !== undefined).map(
          (r) => r.name,
        );
        throw new UsageError(
          `exit reason ${name} has no fixed qualification format; decodable: ${known.join(", ")}`,
        );
      }
      const low = Number(value & 0xffffffffn);
      let summary: string | undefined;
      if (reason === EXIT_REASON.CR_ACCESS) summary = describeCrAccess(low);
      else if (reason === EXIT_REASON.IO_INSTRUCTION) summary = describeIo(low);
      else if (reason === EXIT_REASON.EPT_VIOLATION) summary = summarizeEptViolation(low);
      const json = {
        reason: name,
        ...layoutJson(layout, value & ((1n << BigInt(layout.width)) - 1n)),
        ...(summary ? { summary } : {}),
      };
      const lines = [...layoutLines(layout, value & ((1n << BigInt(layout.width)) - 1n))];
      if (summary !== undefined) lines.push(`  reads as: ${summary}`);
      return { json, lines };
    },
  },
  {
    name: "vm-error",
    summary: "a VM-instruction error number (VMfailValid)",
    value: "a number or a name",
    decode(text) {
      const n =
        vmInstructionErrorNumber(text) ??
        (/^(0x[0-9a-f]+|\d+)$/i.test(text.trim())
          ? Number(parseValue(text, 32, "VM-instruction error"))
          : undefined);
      const info = n === undefined ? undefined : vmInstructionErrorInfo(n);
      if (info === undefined) {
        throw new UsageError(
          `${JSON.stringify(text)} is not a VM-instruction error (1–${VM_INSTRUCTION_ERRORS.length} or a name such as ENTRY_INVALID_CONTROL_FIELD)`,
        );
      }
      const lines = [
        `VM-instruction error ${info.number}: ${info.name}${info.kvmName ? ` (kvm: ${info.kvmName})` : ""}`,
        `  ${info.description}${info.reserved ? " (reserved by the SDM)" : ""}`,
        `  ${info.raisedByKvmNested ? `raised by KVM's nested VMX in ${info.raisedByKvmNested}` : "never raised by KVM's nested VMX"}`,
      ];
      return { json: { ...info }, lines };
    },
  },
  {
    name: "intr-info",
    summary: "a VM-exit interruption-information or IDT-vectoring field",
    value: "a 32-bit value",
    decode(text) {
      const value = parseValue(text, 32, "interruption information");
      return {
        json: {
          ...layoutJson(VM_EXIT_INTR_INFO_LAYOUT, value),
          summary: describeInterruptionInfo(Number(value)),
        },
        lines: [
          ...layoutLines(VM_EXIT_INTR_INFO_LAYOUT, value),
          `  reads as: ${describeInterruptionInfo(Number(value))}`,
        ],
      };
    },
  },
  {
    name: "entry-intr-info",
    summary: "a VM-entry interruption-information field (event injection)",
    value: "a 32-bit value",
    decode(text) {
      const value = parseValue(text, 32, "VM-entry interruption information");
      return {
        json: {
          ...layoutJson(VM_ENTRY_INTR_INFO_LAYOUT, value),
          summary: describeInterruptionInfo(Number(value)),
        },
        lines: [
          ...layoutLines(VM_ENTRY_INTR_INFO_LAYOUT, value),
          `  reads as: ${describeInterruptionInfo(Number(value))}`,
        ],
      };
    },
  },
  registerKind("cr0", "CR0"),
  registerKind("cr3", "CR3 (PCID off)"),
  registerKind("cr3-pcid", "CR3 with CR4.PCIDE"),
  registerKind("cr4", "CR4"),
  registerKind("efer", "IA32_EFER"),
  registerKind("rflags", "RFLAGS"),
  registerKind("xcr0", "XCR0"),
  registerKind("pkru", "PKRU"),
  registerKind("pkrs", "IA32_PKRS"),
  registerKind("dr7", "DR7"),
  registerKind("debugctl", "IA32_DEBUGCTL"),
  registerKind("segment-ar", "VMX segment access rights"),
  registerKind("pte", "a 64-bit (PAE/IA-32e) paging-structure entry"),
  registerKind("pte32", "a 32-bit paging entry"),
  registerKind("ept-entry", "an EPT paging-structure entry"),
  registerKind("eptp", "an EPT pointer"),
  registerKind("ept-violation", "an EPT-violation exit qualification"),
  registerKind("ept-vpid-cap", "IA32_VMX_EPT_VPID_CAP"),
];

/** The decoder for `kind`, or a usage error listing the kinds. */
export function decodeKind(kind: string): DecodeKind {
  const found = DECODE_KINDS.find((k) => k.name === kind.toLowerCase());
  if (found === undefined) {
    const names = DECODE_KINDS.map((k) => k.name);
    throw new UsageError(
      `unknown kind ${JSON.stringify(kind)}${didYouMean(kind, names)}; kinds: ${names.join(", ")}`,
    );
  }
  return found;
}

/** Register names the x86-arch catalog knows, for a consistency test. */
export const REGISTER_KIND_NAMES: readonly string[] = registerNames();
