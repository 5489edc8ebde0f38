import { describe, expect, it } from "vitest";
import { runCli, runJson } from "../testing/run-cli";

describe("nestvisor decode", () => {
  it("decodes a VMCS field by encoding and by name", () => {
    const r = runCli(["decode", "vmcs-field", "0x6c16"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^HOST_RIP 0x6c16 — Host RIP\n/);
    expect(runJson(["decode", "vmcs-field", "GUEST_CS_AR_BYTES", "--json"])).toMatchObject({
      encoding: "0x4816",
      shadowed: { "v6.12": "RO", "v5.2": "RW" },
    });
  });

  it("prints a role with KVM's field names (--json)", () => {
    expect(runJson(["decode", "role", "0x1a3", "--json"])).toEqual({
      word: "0x000001a3",
      level: 3,
      has_4_byte_gpte: false,
      quadrant: 1,
      direct: true,
      access: 1,
      invalid: false,
      efer_nx: false,
      cr0_wp: false,
      smep_andnot_wp: false,
      smap_andnot_wp: false,
      ad_disabled: false,
      guest_mode: false,
      passthrough: false,
      smm: 0,
    });
  });

  it("names the #PF error-code bits KVM 6.12 defines beyond the SDM (kvm_host.h PFERR_*)", () => {
    const out = runCli(["decode", "pferr", "0x0001000280000007"]).stdout;
    expect(out).toMatch(/^#PF error code 0x0001000280000007 /);
    expect(out).toContain("bit 31  GUEST_RMP");
    expect(out).toContain("bit 33  GUEST_PAGE");
    expect(out).toContain("bit 48  IMPLICIT_ACCESS");
    expect(out).not.toContain("undefined or reserved");
    expect(runJson(["decode", "pferr", "0x0001000280000007", "--json"])).toMatchObject({
      kvmFlags: ["GUEST_RMP", "GUEST_PAGE", "IMPLICIT_ACCESS"],
    });
    expect(runCli(["decode", "pferr", "0x0100000000000006"]).stdout).toContain(
      "bits 63:32 0x100000000000000: not architectural and not a flag KVM 6.12 names",
    );
  });

  it("decodes the other kinds", () => {
    expect(runCli(["decode", "cpu-role", "0x000000b9_00003704"]).stdout).toContain(
      "ext (kvm_mmu_extended_role) 0x000000b9: valid, cr4_pke, cr4_smap, cr4_smep, efer_lma",
    );
    expect(runCli(["decode", "pferr", "0x15"]).stdout).toContain(
      "reads as: protection violation, user instruction fetch",
    );
    expect(runCli(["decode", "exit-reason", "48"]).stdout).toMatch(/^0x00000030 EPT_VIOLATION/);
    expect(runCli(["decode", "exit-qual", "0x5658000b", "--reason", "IO_INSTRUCTION"]).stdout).toContain(
      "reads as: IN dword from port 0x5658 (DX)",
    );
    expect(runCli(["decode", "vm-error", "ENTRY_INVALID_CONTROL_FIELD"]).stdout).toMatch(
      /^VM-instruction error 7: /,
    );
    expect(runJson(["decode", "cr4", "0x3626e0", "--json"])).toMatchObject({
      register: "CR4",
      fields: { SMEP: true, SMAP: true, PCIDE: true, VMXE: true },
    });
    expect(runJson(["decode", "efer", "0xd01", "--json"])).toMatchObject({
      fields: { SCE: true, LME: true, LMA: true, NXE: true },
    });
    expect(runJson(["decode", "ept-entry", "0x12345007", "--json"])).toMatchObject({
      register: expect.stringContaining("EPT"),
    });
    expect(runJson(["decode", "eptp", "0x1234505e", "--json"])).toMatchObject({ fields: { AD: true } });
    expect(runJson(["decode", "debugctl", "0x4001", "--json"])).toMatchObject({
      register: "IA32_DEBUGCTL",
      fields: { LBR: true, BTF: false, FREEZE_IN_SMM: true },
    });
    const pte = runCli(["decode", "pte", "0x8000000012345067"]);
    for (const line of pte.stdout.split("\n")) expect(line.length).toBeLessThanOrEqual(100);
  });

  it("rejects bad input with one line and exit code 2", () => {
    const cases: [string[], RegExp][] = [
      [["decode", "cr5", "1"], /unknown kind "cr5" \(did you mean "cr0"\?\); kinds: vmcs-field, role, /],
      [["decode", "cr0", "0xzz"], /cr0 "0xzz" is not a number/],
      [["decode", "intr-info", "0x1_0000_0000"], /does not fit in 32 bits/],
      [["decode", "exit-qual", "0x10"], /exit-qual needs --reason/],
      [["decode", "vm-error", "99"], /"99" is not a VM-instruction error/],
      [["decode", "role"], /missing <kind> <value>/],
    ];
    for (const [args, message] of cases) {
      const r = runCli(args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    }
  });
});
