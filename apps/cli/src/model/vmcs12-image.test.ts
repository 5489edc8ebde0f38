import { fieldByName, VMCS12_REVISION, VMCS12_SIZE, Vmcs12 } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { NESTED_STATE_HEADER_BYTES, readVmcs12Image } from "./vmcs12-image";

function image(): Uint8Array {
  const v = new Vmcs12("v6.12");
  v.revision = VMCS12_REVISION;
  v.launchState = 1;
  v.writeBig(fieldByName("GUEST_RIP")!.encoding, 0xffffffff81000000n);
  v.writeBig(fieldByName("VM_EXIT_REASON")!.encoding, 30n);
  return v.serialize();
}

function nestedState(
  vmcs12: Uint8Array,
  options: { size?: number; format?: number; shadow?: boolean } = {},
): Uint8Array {
  const total = NESTED_STATE_HEADER_BYTES + VMCS12_SIZE * (options.shadow ? 2 : 1);
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, 0x1, true); // GUEST_MODE
  view.setUint16(2, options.format ?? 0, true);
  view.setUint32(4, options.size ?? total, true);
  view.setBigUint64(8, 0x1000n, true);
  view.setBigUint64(16, 0x5000n, true);
  bytes.set(vmcs12, NESTED_STATE_HEADER_BYTES);
  return bytes;
}

describe("readVmcs12Image", () => {
  it("decodes a raw 4-KiB region", () => {
    const { source, vmcs12 } = readVmcs12Image(image(), "r.bin", "v6.12", false);
    expect(source).toBe("raw");
    expect(vmcs12.readBig(fieldByName("GUEST_RIP")!.encoding)).toBe(0xffffffff81000000n);
    expect(vmcs12.launchState).toBe(1);
  });

  it("decodes the vmcs12 of a KVM_GET_NESTED_STATE buffer and its header", () => {
    const result = readVmcs12Image(nestedState(image(), { shadow: true }), "n.bin", "v6.12", false);
    expect(result.source).toBe("nested-state");
    expect(result.nestedState).toMatchObject({
      flags: ["GUEST_MODE"],
      vmxonPa: "0x0000000000001000",
      vmcs12Pa: "0x0000000000005000",
      hasShadowVmcs12: true,
    });
    expect(result.vmcs12.readBig(fieldByName("VM_EXIT_REASON")!.encoding)).toBe(30n);
  });

  it("rejects truncated, foreign and empty inputs with the reason", () => {
    expect(() => readVmcs12Image(image().subarray(0, 1000), "t.bin", "v6.12", false)).toThrow(
      /t\.bin: 1000 bytes is neither a 4096-byte vmcs12 region nor/,
    );
    const cut = nestedState(image()).subarray(0, 3000);
    expect(() => readVmcs12Image(cut, "c.bin", "v6.12", false)).toThrow(
      /truncated KVM_GET_NESTED_STATE buffer: 3000 bytes, but its header says 4224/,
    );
    expect(() => readVmcs12Image(nestedState(image(), { format: 1 }), "s.bin", "v6.12", false)).toThrow(
      /SVM nested state/,
    );
    expect(() => readVmcs12Image(nestedState(image(), { size: 128 }), "e.bin", "v6.12", false)).toThrow(
      /holds no vmcs12/,
    );
  });

  it("checks the revision unless forced", () => {
    const bytes = image();
    bytes[0] = 0x42;
    expect(() => readVmcs12Image(bytes, "x.bin", "v6.12", false)).toThrow(
      /is not KVM's vmcs12 revision 0x11e57ed0/,
    );
    expect(readVmcs12Image(bytes, "x.bin", "v6.12", true).source).toBe("raw");
  });
});
