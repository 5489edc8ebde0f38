import { decodePageRole, encodePageRole } from "@nestvisor/mmu";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DECODE_KINDS, decodeKind, parseHex, parseValue, REGISTER_KIND_NAMES } from "./decoders";

const json = (kind: string, value: string, reason?: string) =>
  decodeKind(kind).decode(value, reason === undefined ? {} : { reason }).json;

describe("decode kinds", () => {
  it("covers every kind the issue lists", () => {
    const names = DECODE_KINDS.map((k) => k.name);
    for (const kind of [
      "vmcs-field",
      "role",
      "cpu-role",
      "pferr",
      "exit-reason",
      "exit-qual",
      "vm-error",
      "cr0",
      "cr4",
      "efer",
      "pte",
      "ept-entry",
      "eptp",
    ]) {
      expect(names).toContain(kind);
    }
    for (const name of names.filter((n) => REGISTER_KIND_NAMES.includes(n)))
      expect(() => decodeKind(name).decode("0", {})).not.toThrow();
  });

  it("vmcs-field: by encoding or name, with offsets and shadow status", () => {
    expect(json("vmcs-field", "0x4816")).toMatchObject({
      name: "GUEST_CS_AR_BYTES",
      encoding: "0x4816",
      width: "32-bit",
      type: "guest state",
      vmcs12Offset: { "v6.12": 884, "v5.3": 884 },
      shadowed: { "v6.12": "RO", "v5.2": "RW" },
    });
    expect(json("vmcs-field", "guest_rip")).toMatchObject({ encoding: "0x681e", width: "natural-width" });
    expect(() => decodeKind("vmcs-field").decode("NOT_A_FIELD", {})).toThrow(
      /not a VMCS field name or encoding/,
    );
  });

  it("role: KVM's field names, round trip with the mmu encoder", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (word) => {
        const fields = decodePageRole(word);
        const out = json("role", word.toString(16)) as Record<string, unknown>;
        expect(out.word).toBe(`0x${word.toString(16).padStart(8, "0")}`);
        expect(out.level).toBe(fields.level);
        expect(out.direct).toBe(fields.direct);
        expect(encodePageRole(fields)).toBe(
          encodePageRole(decodePageRole(Number.parseInt(String(out.word), 16))),
        );
      }),
    );
  });

  it("cpu-role, pferr, exit-reason, exit-qual, vm-error", () => {
    expect(json("cpu-role", "0x000000b9_00003704")).toMatchObject({
      base: { level: 4, cr0_wp: true },
      ext: { valid: true, efer_lma: true },
    });
    expect(json("pferr", "0x7")).toMatchObject({
      fields: { P: true, "W/R": true, "U/S": true },
      summary: "protection violation, user write",
    });
    expect(json("exit-reason", "EPT_VIOLATION")).toMatchObject({ basic: 48, name: "EPT_VIOLATION" });
    expect(json("exit-reason", "0x80000021")).toMatchObject({ basic: 33, failedVmentry: true });
    expect(json("exit-qual", "0x5658000b", "IO_INSTRUCTION")).toMatchObject({
      fields: { PORT: 0x5658, IN: true },
      summary: expect.stringContaining("port 0x5658"),
    });
    expect(json("vm-error", "7")).toMatchObject({ number: 7, name: "ENTRY_INVALID_CONTROL_FIELD" });
    expect(() => decodeKind("exit-qual").decode("1", {})).toThrow(/needs --reason/);
    expect(() => decodeKind("exit-qual").decode("1", { reason: "CPUID" })).toThrow(
      /has no fixed qualification format/,
    );
    expect(() => decodeKind("exit-reason").decode("EPT_VIOLATON", {})).toThrow(
      /did you mean "EPT_VIOLATION"/,
    );
  });

  it("registers: named fields and undefined bits", () => {
    expect(json("cr0", "0x80050033")).toMatchObject({
      register: "CR0",
      fields: { PG: true, WP: true, PE: true },
    });
    expect(json("pte", "0x8000000012345067")).toMatchObject({ fields: { P: true, XD: true, ADDR: 0x12345 } });
    expect(json("eptp", "0x1234505e")).toMatchObject({ fields: { AD: true } });
  });

  it("parses numbers strictly", () => {
    expect(parseValue("0x10", 32, "v")).toBe(16n);
    expect(parseValue("10", 32, "v")).toBe(10n);
    expect(() => parseValue("0x1_0000_0000", 32, "v")).toThrow(/does not fit in 32 bits/);
    expect(() => parseValue("12g", 32, "value")).toThrow(/is not a number/);
    expect(parseHex("1a3", 32, "role")).toBe(0x1a3n);
    expect(() => decodeKind("cr5")).toThrow(/unknown kind "cr5" \(did you mean "cr0"\?\)/);
  });
});
