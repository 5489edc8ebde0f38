import { VMCS12_ERAS, VMCS12_REVISION, VMCS12_SIZE, Vmcs12, type Vmcs12Era } from "@nestvisor/vmx";
import { UsageError } from "../framework/errors";

/**
 * A vmcs12 image read from a file: either the raw 4-KiB region (a dump of L1's VMCS page, or the
 * page KVM flushes), or a `KVM_GET_NESTED_STATE` buffer, whose 128-byte header (struct
 * kvm_nested_state: u16 flags, u16 format, u32 size, then the VMX header: u64 vmxon_pa, u64
 * vmcs12_pa, u16 smm.flags, …) is followed by the vmcs12 and, when L1 uses VMCS shadowing, the
 * shadow vmcs12 (kvm: uapi/asm/kvm.h; vmx_get_nested_state).
 */

export const NESTED_STATE_HEADER_BYTES = 128;
/** kvm: KVM_STATE_NESTED_FORMAT_VMX / _SVM. */
const FORMAT_VMX = 0;
const FORMAT_SVM = 1;

/** kvm: KVM_STATE_NESTED_* flags of struct kvm_nested_state. */
const NESTED_FLAGS: readonly [number, string][] = [
  [0x1, "GUEST_MODE"],
  [0x2, "RUN_PENDING"],
  [0x4, "EVMCS"],
  [0x8, "MTF_PENDING"],
];
/** kvm: KVM_STATE_NESTED_SMM_* flags of the VMX header. */
const SMM_FLAGS: readonly [number, string][] = [
  [0x1, "SMM_GUEST_MODE"],
  [0x2, "SMM_VMXON"],
];

export interface NestedStateHeader {
  readonly flags: readonly string[];
  readonly format: "vmx";
  readonly size: number;
  readonly vmxonPa: string;
  readonly vmcs12Pa: string;
  readonly smmFlags: readonly string[];
  readonly hasShadowVmcs12: boolean;
}

export interface Vmcs12Image {
  readonly source: "raw" | "nested-state";
  readonly vmcs12: Vmcs12;
  readonly nestedState?: NestedStateHeader;
}

function flagNames(value: number, table: readonly [number, string][]): string[] {
  const names = table.filter(([bit]) => (value & bit) !== 0).map(([, name]) => name);
  const unknown = table.reduce((rest, [bit]) => rest & ~bit, value);
  if (unknown !== 0) names.push(`0x${unknown.toString(16)}`);
  return names;
}

function u64Hex(view: DataView, offset: number): string {
  return `0x${view.getBigUint64(offset, true).toString(16).padStart(16, "0")}`;
}

export function checkEra(era: string): Vmcs12Era {
  if (!(VMCS12_ERAS as readonly string[]).includes(era)) {
    throw new UsageError(`unknown vmcs12 era "${era}"; eras: ${VMCS12_ERAS.join(", ")}`);
  }
  return era as Vmcs12Era;
}

/** Reads an image; `name` is the file as the user typed it. `force` skips the revision check. */
export function readVmcs12Image(
  bytes: Uint8Array,
  name: string,
  era: Vmcs12Era,
  force: boolean,
): Vmcs12Image {
  const expected = `neither a ${VMCS12_SIZE}-byte vmcs12 region nor a KVM_GET_NESTED_STATE buffer (a ${NESTED_STATE_HEADER_BYTES}-byte header, then the ${VMCS12_SIZE}-byte vmcs12)`;
  let region: Uint8Array;
  let nestedState: NestedStateHeader | undefined;
  if (bytes.length === VMCS12_SIZE) region = bytes;
  else {
    if (bytes.length < NESTED_STATE_HEADER_BYTES)
      throw new UsageError(`${name}: ${bytes.length} bytes is ${expected}`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const flags = view.getUint16(0, true);
    const format = view.getUint16(2, true);
    const size = view.getUint32(4, true);
    if (format !== FORMAT_VMX && format !== FORMAT_SVM)
      throw new UsageError(`${name}: ${bytes.length} bytes is ${expected}`);
    if (format === FORMAT_SVM)
      throw new UsageError(`${name}: an SVM nested state (format 1) holds a vmcb12, not a vmcs12`);
    if (size < NESTED_STATE_HEADER_BYTES)
      throw new UsageError(`${name}: nested-state size field ${size} is smaller than its own header`);
    if (size === NESTED_STATE_HEADER_BYTES) {
      throw new UsageError(
        `${name}: this nested state holds no vmcs12 (L1 had no current VMCS: vmcs12_pa ${u64Hex(view, 16)})`,
      );
    }
    if (bytes.length < NESTED_STATE_HEADER_BYTES + VMCS12_SIZE || bytes.length < size) {
      throw new UsageError(
        `${name}: truncated KVM_GET_NESTED_STATE buffer: ${bytes.length} bytes, but its header says ${size} (a vmcs12 needs ${NESTED_STATE_HEADER_BYTES + VMCS12_SIZE})`,
      );
    }
    nestedState = {
      flags: flagNames(flags, NESTED_FLAGS),
      format: "vmx",
      size,
      vmxonPa: u64Hex(view, 8),
      vmcs12Pa: u64Hex(view, 16),
      smmFlags: flagNames(view.getUint16(24, true), SMM_FLAGS),
      hasShadowVmcs12: size >= NESTED_STATE_HEADER_BYTES + 2 * VMCS12_SIZE,
    };
    region = bytes.subarray(NESTED_STATE_HEADER_BYTES, NESTED_STATE_HEADER_BYTES + VMCS12_SIZE);
  }
  const vmcs12 = new Vmcs12(era);
  vmcs12.load(region.slice());
  if (!force && vmcs12.revision !== VMCS12_REVISION) {
    throw new UsageError(
      `${name}: revision 0x${vmcs12.revision.toString(16)} is not KVM's vmcs12 revision 0x${VMCS12_REVISION.toString(16)} (not a vmcs12? --force decodes it anyway)`,
    );
  }
  return {
    source: nestedState === undefined ? "raw" : "nested-state",
    vmcs12,
    ...(nestedState === undefined ? {} : { nestedState }),
  };
}
