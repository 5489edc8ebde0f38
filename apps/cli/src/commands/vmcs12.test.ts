import { fieldByName, VMCS12_REVISION, Vmcs12 } from "@nestvisor/vmx";
import { describe, expect, it } from "vitest";
import { runCli, runJson, tempFiles } from "../testing/run-cli";

function region(): Uint8Array {
  const v = new Vmcs12();
  v.revision = VMCS12_REVISION;
  v.launchState = 1;
  v.writeBig(fieldByName("GUEST_RIP")!.encoding, 0x7fa9ee5224e4n);
  v.writeBig(fieldByName("VM_EXIT_REASON")!.encoding, 48n);
  v.writeBig(fieldByName("GUEST_PHYSICAL_ADDRESS")!.encoding, 0x1ab000n);
  return v.serialize();
}

function nestedState(vmcs12: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(128 + 4096);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, 0x3, true);
  view.setUint32(4, bytes.length, true);
  view.setBigUint64(8, 0x9000n, true);
  view.setBigUint64(16, 0xa000n, true);
  bytes.set(vmcs12, 128);
  return bytes;
}

describe("nestvisor vmcs12", () => {
  it("layout --json prints [{name, encoding, width, type, offset}]", () => {
    const rows = runJson(["vmcs12", "layout", "--json"]) as Record<string, unknown>[];
    expect(rows).toHaveLength(178);
    for (const row of rows) expect(Object.keys(row)).toEqual(["name", "encoding", "width", "type", "offset"]);
    expect(rows).toContainEqual({
      name: "GUEST_RIP",
      encoding: "0x681e",
      width: "natural-width",
      type: "guest state",
      offset: 544,
    });
    expect(rows).toContainEqual({
      name: "IO_BITMAP_A_HIGH",
      encoding: "0x2001",
      width: "32-bit",
      type: "control",
      offset: 44,
    });
    const old = runJson(["vmcs12", "layout", "--era", "v5.3", "--json"]) as { name: string }[];
    expect(old.some((r) => r.name === "CR3_TARGET_VALUE0")).toBe(true);
    const text = runCli(["vmcs12", "layout"]);
    expect(text.stdout).toMatch(/^struct vmcs12 \(v6\.12\): 998 bytes/);
  });

  it("dump decodes a raw region and a KVM_GET_NESTED_STATE buffer", () => {
    const dir = tempFiles({ "r.bin": region(), "n.bin": nestedState(region()) });
    const r = runCli(["vmcs12", "dump", "r.bin"], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("revision 0x11e57ed0, abort 0, launch state launched");
    expect(r.stdout).toMatch(/GUEST_RIP\s+0x00007fa9ee5224e4/);
    expect(r.stdout).toMatch(/\d+ of \d+ fields are zero/);
    const n = runJson(["vmcs12", "dump", "n.bin", "--json"], { cwd: dir }) as {
      source: string;
      nestedState: { flags: string[] };
      fields: { name: string; value: string }[];
    };
    expect(n.source).toBe("nested-state");
    expect(n.nestedState.flags).toEqual(["GUEST_MODE", "RUN_PENDING"]);
    expect(n.fields.find((f) => f.name === "VM_EXIT_REASON")!.value).toBe("0x30");
  });

  it("rejects a truncated file, a foreign revision and a missing file with exit code 2", () => {
    const foreign = region();
    foreign[0] = 1;
    const dir = tempFiles({ "short.bin": region().subarray(0, 2048), "other.bin": foreign });
    const cases: [string[], RegExp][] = [
      [
        ["vmcs12", "dump", "short.bin"],
        /^nestvisor vmcs12 dump: short\.bin: 2048 bytes is neither a 4096-byte vmcs12 region nor a KVM_GET_NESTED_STATE buffer/,
      ],
      [["vmcs12", "dump", "other.bin"], /revision 0x11e57e01 is not KVM's vmcs12 revision/],
      [["vmcs12", "dump", "none.bin"], /none\.bin: no such file/],
      [["vmcs12", "layout", "--era", "v4.0"], /unknown vmcs12 era "v4\.0"/],
    ];
    for (const [args, message] of cases) {
      const r = runCli(args, { cwd: dir });
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    }
    expect(runCli(["vmcs12", "dump", "other.bin", "--force"], { cwd: dir }).code).toBe(0);
  });
});
