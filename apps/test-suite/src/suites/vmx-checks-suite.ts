import {
  CPU_BASED_CTLS as C,
  entryCheckControlMsr,
  type Msr64,
  VM_ENTRY_CTLS as N,
  PIN_BASED_CTLS as P,
  SECONDARY_EXEC_CTLS as S2,
  type VmxCapabilities,
  vmxMiscCr3Count,
  VM_EXIT_CTLS as X,
} from "@nestvisor/vmx";
import { CR0, CR4, EFER } from "@nestvisor/x86-arch";
import type { Suite } from "../suite";
import {
  type EntryCase,
  type EntrySetup,
  entryCase,
  entryGroup,
  FAIL_CONTROLS,
  FAIL_GUEST,
  FAIL_HOST,
} from "./entry-check-case";
import { LINUX_CR4, LINUX_EFER } from "./vmcs12-baseline";
import { L1 } from "./vmx-world";

const MAXPHY = 46;
const NONCANONICAL = 0xaaaaaaaaaaaaaaaan;
const TWO_64 = 1n << 64n;

const pow2 = (i: number): bigint => 1n << BigInt(i);

/** kvm-unit-tests' address sweep: 1 << i for i = 0..63, 0xfff, 0x1000, 2^MAXPHY − 4096, −1. */
function addressSweep(): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i < 64; i++) out.push(pow2(i));
  out.push(0xfffn, 0x1000n, pow2(MAXPHY) - 4096n, TWO_64 - 1n);
  return out;
}

/** Valid: 4-KiB aligned (or `align`) and below 2^MAXPHYADDR (kvm: page_address_valid). */
function validAddress(a: bigint, align = 4096n): boolean {
  return a % align === 0n && a < pow2(MAXPHY);
}

const hexBig = (v: bigint): string => `0x${v.toString(16)}`;

// ---------------------------------------------------------------------------------------------
// §5.1: reserved and required bits of the control fields

function controlMsr(caps: VmxCapabilities, cls: "pin" | "primary" | "exit" | "entry" | "secondary"): Msr64 {
  return cls === "secondary" ? caps.procbasedCtls2 : entryCheckControlMsr(caps, cls);
}

const CONTROL_FIELD = {
  pin: "PIN_BASED_VM_EXEC_CONTROL",
  primary: "CPU_BASED_VM_EXEC_CONTROL",
  secondary: "SECONDARY_VM_EXEC_CONTROL",
  exit: "VM_EXIT_CONTROLS",
  entry: "VM_ENTRY_CONTROLS",
} as const;

function controlBitCases(): EntryCase[] {
  const cases: EntryCase[] = [];
  for (const cls of ["pin", "primary", "secondary", "exit", "entry"] as const) {
    for (let bit = 0; bit < 32; bit++) {
      const mask = 2 ** bit;
      cases.push(
        entryCase(
          `5.1 ${cls} control bit ${bit}: reserved set / required cleared / flexible at allowed-0`,
          (s) => {
            const msr = controlMsr(s.caps, cls);
            return (msr.hi & mask) === 0 || (msr.lo & mask) !== 0 ? FAIL_CONTROLS : "passes";
          },
          (s) => {
            const msr = controlMsr(s.caps, cls);
            if (cls === "secondary") s.secondary(0);
            const field = CONTROL_FIELD[cls];
            if ((msr.hi & mask) === 0) return s.bits(field, mask); // a reserved bit set
            if ((msr.lo & mask) !== 0) return s.bits(field, 0, mask); // a required bit cleared
            if (cls === "exit" || cls === "entry") return "skip"; // these flexible bits change the guest
            // kvm-unit-tests: the allowed-0 settings with this bit clear.
            return s.set(field, (msr.lo & ~mask) >>> 0);
          },
        ),
      );
    }
  }
  cases.push(
    entryCase("5.1 secondary controls are ignored while 'activate secondary controls' is 0", "passes", (s) =>
      s
        .bits("CPU_BASED_VM_EXEC_CONTROL", 0, C.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS)
        .set("SECONDARY_VM_EXEC_CONTROL", 0xffffffff),
    ),
  );
  return cases;
}

// ---------------------------------------------------------------------------------------------
// §5.2: specific dependencies

function cr3TargetCases(): EntryCase[] {
  const cases: EntryCase[] = [];
  for (let n = 0; n <= 5; n++) {
    cases.push(
      entryCase(
        `5.2.1 CR3-target count ${n}`,
        (s) => (n <= vmxMiscCr3Count(s.caps.misc.lo) ? "passes" : FAIL_CONTROLS),
        (s) => s.set("CR3_TARGET_COUNT", n),
      ),
    );
  }
  for (const n of [0x7fffffff, 0x80000000, 0xffffffff]) {
    cases.push(
      entryCase(`5.2.1 CR3-target count 0x${n.toString(16)}`, FAIL_CONTROLS, (s) =>
        s.set("CR3_TARGET_COUNT", n),
      ),
    );
  }
  return cases;
}

function addressCases(): EntryCase[] {
  const cases: EntryCase[] = [];
  const sweep = addressSweep();
  for (const field of ["IO_BITMAP_A", "IO_BITMAP_B"]) {
    for (const a of sweep) {
      cases.push(
        entryCase(
          `5.2.3 ${field} = ${hexBig(a)} with I/O bitmaps`,
          validAddress(a) ? "passes" : FAIL_CONTROLS,
          (s) => s.bits("CPU_BASED_VM_EXEC_CONTROL", C.CPU_BASED_USE_IO_BITMAPS).set(field, a),
        ),
      );
      cases.push(
        entryCase(`5.2.3 ${field} = ${hexBig(a)} without I/O bitmaps`, "passes", (s) =>
          s.bits("CPU_BASED_VM_EXEC_CONTROL", 0, C.CPU_BASED_USE_IO_BITMAPS).set(field, a),
        ),
      );
    }
  }
  for (const a of sweep) {
    cases.push(
      entryCase(
        `5.2.4 MSR_BITMAP = ${hexBig(a)} with MSR bitmaps`,
        validAddress(a) ? "passes" : FAIL_CONTROLS,
        (s) => s.bits("CPU_BASED_VM_EXEC_CONTROL", C.CPU_BASED_USE_MSR_BITMAPS).set("MSR_BITMAP", a),
      ),
    );
    cases.push(
      // kvm-unit-tests forces CR8-load/store exiting on, so an unbacked page is not an error for KVM.
      entryCase(
        `5.2.5 VIRTUAL_APIC_PAGE_ADDR = ${hexBig(a)} with TPR shadow`,
        validAddress(a) ? "passes" : FAIL_CONTROLS,
        (s) =>
          s
            .tprShadow()
            .bits("CPU_BASED_VM_EXEC_CONTROL", C.CPU_BASED_CR8_LOAD_EXITING | C.CPU_BASED_CR8_STORE_EXITING)
            .set("VIRTUAL_APIC_PAGE_ADDR", a),
      ),
    );
    // 5.2.6: valid addresses outside L1's memory are skipped, as kvm-unit-tests does.
    if (!validAddress(a) || a < BigInt(L1.MEMORY_SIZE)) {
      cases.push(
        entryCase(
          `5.2.6 APIC_ACCESS_ADDR = ${hexBig(a)} with APIC-access virtualization`,
          validAddress(a) ? "passes" : FAIL_CONTROLS,
          (s) => s.secondary(S2.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES).set("APIC_ACCESS_ADDR", a),
        ),
      );
    }
    cases.push(
      entryCase(
        `5.2.25 PML_ADDRESS = ${hexBig(a)} with EPT and PML`,
        validAddress(a) ? "passes" : FAIL_CONTROLS,
        (s) => s.ept().secondary(S2.SECONDARY_EXEC_ENABLE_PML).set("PML_ADDRESS", a),
      ),
    );
  }
  return cases;
}

function apicCases(): EntryCase[] {
  const cases: EntryCase[] = [];
  const virt = [
    S2.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE,
    S2.SECONDARY_EXEC_APIC_REGISTER_VIRT,
    S2.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY,
  ];
  for (let combo = 1; combo < 8; combo++) {
    const bits = virt.reduce((v, b, i) => ((combo & (1 << i)) !== 0 ? v | b : v), 0);
    cases.push(
      entryCase(
        `5.2.7 TPR shadow off with x2APIC/register/VID virtualization = ${combo.toString(2).padStart(3, "0")}`,
        FAIL_CONTROLS,
        (s) => s.secondary(bits),
      ),
    );
    cases.push(
      entryCase(
        `5.2.7 TPR shadow on with x2APIC/register/VID virtualization = ${combo.toString(2).padStart(3, "0")}`,
        "passes",
        (s) => s.tprShadow().secondary(bits),
      ),
    );
  }
  for (const [x2apic, access] of [
    [true, true],
    [true, false],
    [false, true],
    [false, false],
  ] as const) {
    cases.push(
      entryCase(
        `5.2.8 virtualize x2APIC ${+x2apic}, virtualize APIC accesses ${+access}`,
        x2apic && access ? FAIL_CONTROLS : "passes",
        (s) =>
          s
            .tprShadow()
            .set("APIC_ACCESS_ADDR", L1.APIC_ACCESS)
            .secondary(
              (x2apic ? S2.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE : 0) |
                (access ? S2.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES : 0),
            ),
      ),
    );
  }
  cases.push(
    entryCase("5.2.9 virtual-interrupt delivery without external-interrupt exiting", FAIL_CONTROLS, (s) =>
      s
        .tprShadow()
        .secondary(S2.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY)
        .bits("PIN_BASED_VM_EXEC_CONTROL", 0, P.PIN_BASED_EXT_INTR_MASK),
    ),
  );
  const posted = (s: EntrySetup, vid: boolean, ack: boolean) => {
    s.tprShadow().set("POSTED_INTR_NV", 0xf2).set("POSTED_INTR_DESC_ADDR", L1.POSTED_INTR_DESC);
    if (vid) s.secondary(S2.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY);
    s.bits("VM_EXIT_CONTROLS", ack ? X.VM_EXIT_ACK_INTR_ON_EXIT : 0, ack ? 0 : X.VM_EXIT_ACK_INTR_ON_EXIT);
    return s.bits("PIN_BASED_VM_EXEC_CONTROL", P.PIN_BASED_POSTED_INTR);
  };
  for (const [vid, ack] of [
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ] as const) {
    cases.push(
      entryCase(
        `5.2.10 posted interrupts with VID ${+vid}, acknowledge-on-exit ${+ack}`,
        vid && ack ? "passes" : FAIL_CONTROLS,
        (s) => posted(s, vid, ack),
      ),
    );
  }
  for (let i = 0; i < 16; i++) {
    cases.push(
      entryCase(
        `5.2.11 posted-interrupt notification vector 1 << ${i}`,
        i < 8 ? "passes" : FAIL_CONTROLS,
        (s) => posted(s, true, true).set("POSTED_INTR_NV", 1 << i),
      ),
    );
  }
  for (const a of [1, 2, 4, 8, 0x10, 0x20, 0x0f, 0xf0, 0xff, 0, 0x8000, 0xc000]) {
    cases.push(
      entryCase(
        `5.2.12 posted-interrupt descriptor at 0x${a.toString(16)}`,
        a % 64 === 0 ? "passes" : FAIL_CONTROLS,
        (s) => posted(s, true, true).set("POSTED_INTR_DESC_ADDR", a),
      ),
    );
  }
  for (const t of [0x10, 0x7fffffff, 0xffffffff, ...Array.from({ length: 28 }, (_, i) => 2 ** (i + 4))]) {
    cases.push(
      entryCase(`5.2.14 TPR threshold 0x${t.toString(16)} (bits 31:4 set)`, FAIL_CONTROLS, (s) =>
        s.tprShadow().set("TPR_THRESHOLD", t),
      ),
    );
  }
  for (const vtpr of [0x00, 0x50, 0xf0]) {
    for (let t = 0; t < 16; t++) {
      cases.push(
        entryCase(
          `5.2.15 TPR threshold ${t} with VTPR 0x${vtpr.toString(16)}`,
          t > vtpr >>> 4 ? FAIL_CONTROLS : "passes",
          (s) => {
            s.world.memory.write32(L1.VIRTUAL_APIC + 0x80, vtpr);
            return s.tprShadow().set("TPR_THRESHOLD", t);
          },
        ),
      );
    }
  }
  return cases;
}

function miscControlCases(): EntryCase[] {
  const cases: EntryCase[] = [];
  cases.push(
    entryCase("5.2.16 virtual NMIs without NMI exiting", FAIL_CONTROLS, (s) =>
      s.bits("PIN_BASED_VM_EXEC_CONTROL", P.PIN_BASED_VIRTUAL_NMIS, P.PIN_BASED_NMI_EXITING),
    ),
  );
  for (const [vnmi, window] of [
    [false, true],
    [false, false],
    [true, true],
    [true, false],
  ] as const) {
    cases.push(
      entryCase(
        `5.2.17 virtual NMIs ${+vnmi}, NMI-window exiting ${+window}`,
        !vnmi && window ? FAIL_CONTROLS : "passes",
        (s) =>
          s
            .bits(
              "PIN_BASED_VM_EXEC_CONTROL",
              vnmi ? P.PIN_BASED_VIRTUAL_NMIS : 0,
              vnmi ? 0 : P.PIN_BASED_VIRTUAL_NMIS,
            )
            .bits("CPU_BASED_VM_EXEC_CONTROL", window ? C.CPU_BASED_NMI_WINDOW_EXITING : 0),
      ),
    );
  }
  cases.push(
    entryCase("5.2.13 VPID enabled with VPID 0", FAIL_CONTROLS, (s) =>
      s.secondary(S2.SECONDARY_EXEC_ENABLE_VPID).set("VIRTUAL_PROCESSOR_ID", 0),
    ),
    entryCase("5.2.13 VPID disabled with VPID 0", "passes", (s) => s.set("VIRTUAL_PROCESSOR_ID", 0)),
  );
  for (let i = 0; i < 16; i++) {
    cases.push(
      entryCase(`5.2.13 VPID enabled with VPID 1 << ${i}`, "passes", (s) =>
        s.secondary(S2.SECONDARY_EXEC_ENABLE_VPID).set("VIRTUAL_PROCESSOR_ID", 1 << i),
      ),
    );
  }
  cases.push(
    entryCase("5.2.23 unrestricted guest without EPT", FAIL_CONTROLS, (s) =>
      s.secondary(S2.SECONDARY_EXEC_UNRESTRICTED_GUEST),
    ),
    entryCase("5.2.24 mode-based execute control without EPT", FAIL_CONTROLS, (s) =>
      s.secondary(S2.SECONDARY_EXEC_MODE_BASED_EPT_EXEC),
    ),
    entryCase("5.2.25 PML without EPT", FAIL_CONTROLS, (s) =>
      s.set("PML_ADDRESS", L1.PML).secondary(S2.SECONDARY_EXEC_ENABLE_PML),
    ),
    entryCase("5.2.26 save VMX-preemption timer without activating it", FAIL_CONTROLS, (s) =>
      s
        .bits("VM_EXIT_CONTROLS", X.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER)
        .bits("PIN_BASED_VM_EXEC_CONTROL", 0, P.PIN_BASED_VMX_PREEMPTION_TIMER),
    ),
    entryCase("5.2.26 save VMX-preemption timer with it activated", "passes", (s) =>
      s
        .bits("VM_EXIT_CONTROLS", X.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER)
        .bits("PIN_BASED_VM_EXEC_CONTROL", P.PIN_BASED_VMX_PREEMPTION_TIMER),
    ),
  );
  return cases;
}

function eptpCases(): EntryCase[] {
  const cases: EntryCase[] = [];
  const base = BigInt(L1.EPT_PML4);
  const withEptp = (s: EntrySetup, eptp: bigint) => s.ept().set("EPT_POINTER", eptp);
  for (let type = 0; type < 8; type++) {
    cases.push(
      entryCase(
        `5.2.18 EPTP memory type ${type}`,
        (s) => {
          const lo = s.caps.eptVpidCap.lo;
          return (type === 0 && (lo & (1 << 8)) !== 0) || (type === 6 && (lo & (1 << 14)) !== 0)
            ? "passes"
            : FAIL_CONTROLS;
        },
        (s) => withEptp(s, base | (3n << 3n) | BigInt(type)),
      ),
    );
  }
  for (let length = 0; length < 8; length++) {
    cases.push(
      entryCase(
        `5.2.19 EPTP walk length field ${length}`,
        (s) =>
          length === 3 || (length === 4 && (s.caps.eptVpidCap.lo & (1 << 7)) !== 0)
            ? "passes"
            : FAIL_CONTROLS,
        (s) => withEptp(s, base | (BigInt(length) << 3n) | 6n),
      ),
    );
  }
  cases.push(
    entryCase(
      "5.2.20 EPTP A/D enable",
      (s) => ((s.caps.eptVpidCap.lo & (1 << 21)) !== 0 ? "passes" : FAIL_CONTROLS),
      (s) => withEptp(s, base | (1n << 6n) | (3n << 3n) | 6n),
    ),
  );
  for (let v = 1; v < 32; v++) {
    cases.push(
      entryCase(`5.2.21 EPTP bits 11:7 = ${v}`, FAIL_CONTROLS, (s) =>
        withEptp(s, base | (BigInt(v) << 7n) | (3n << 3n) | 6n),
      ),
    );
  }
  for (let j = MAXPHY; j < 64; j++) {
    cases.push(
      entryCase(`5.2.22 EPTP bit ${j}`, FAIL_CONTROLS, (s) => withEptp(s, base | pow2(j) | (3n << 3n) | 6n)),
    );
  }
  return cases;
}

function msrListCases(): EntryCase[] {
  const cases: EntryCase[] = [];
  for (const [which, field, count] of [
    ["5.2.27", "VM_EXIT_MSR_STORE", "VM_EXIT_MSR_STORE_COUNT"],
    ["5.2.28", "VM_ENTRY_MSR_LOAD", "VM_ENTRY_MSR_LOAD_COUNT"],
  ] as const) {
    const addr = `${field}_ADDR`;
    for (let bits = 1; bits < 16; bits++) {
      cases.push(
        entryCase(`${which} ${addr} = 0x1000${bits.toString(16)} (misaligned)`, FAIL_CONTROLS, (s) =>
          s.set(count, 1).set(addr, 0x10000 + bits),
        ),
      );
    }
    for (let i = 4; i < 64; i++) {
      const a = pow2(i);
      cases.push(
        entryCase(
          `${which} ${addr} = 1 << ${i}, count 1`,
          a + 15n < pow2(MAXPHY) ? "passes" : FAIL_CONTROLS,
          (s) => s.set(count, 1).set(addr, a),
        ),
      );
    }
    for (const [delta, ok] of [
      [16n, false],
      [32n, true],
      [48n, true],
    ] as const) {
      cases.push(
        entryCase(`${which} ${addr} = 2^MAXPHY − ${delta}, count 2`, ok ? "passes" : FAIL_CONTROLS, (s) =>
          s.set(count, 2).set(addr, pow2(MAXPHY) - delta),
        ),
      );
    }
  }
  return cases;
}

/** VM-entry interruption-information (SDM 25.8.3): vector, type << 8, error code bit 11, valid bit 31. */
function intrInfo(vector: number, type: number, errorCode: boolean): number {
  return (0x8000_0000 | (errorCode ? 0x800 : 0) | (type << 8) | vector) >>> 0;
}

const ERROR_CODE_VECTORS = new Set([8, 10, 11, 12, 13, 14, 17]);

function eventInjectionCases(): EntryCase[] {
  const cases: EntryCase[] = [];
  const inject = (s: EntrySetup, info: number, length = 0, errorCode = 0) =>
    s
      .set("VM_ENTRY_INTR_INFO_FIELD", info)
      .set("VM_ENTRY_INSTRUCTION_LEN", length)
      .set("VM_ENTRY_EXCEPTION_ERROR_CODE", errorCode);
  const noErrcodeCheck = (s: EntrySetup) => (s.caps.basic.hi & (1 << 24)) !== 0;
  cases.push(
    entryCase("5.2.29 interruption type 1 (reserved)", FAIL_CONTROLS, (s) =>
      inject(s, intrInfo(0, 1, false)),
    ),
    entryCase("5.2.29 external interrupt vector 0", "passes", (s) => inject(s, intrInfo(0, 0, false))),
    entryCase("5.2.30 type 7 (other event) with vector 1", FAIL_CONTROLS, (s) =>
      inject(s, intrInfo(1, 7, false)),
    ),
    entryCase("5.2.31 NMI with vector 2", "passes", (s) => inject(s, intrInfo(2, 2, false))),
  );
  for (const v of [0, 1, 3, 255]) {
    cases.push(
      entryCase(`5.2.31 NMI with vector ${v}`, FAIL_CONTROLS, (s) => inject(s, intrInfo(v, 2, false))),
    );
  }
  for (const v of [32, 64, 255]) {
    cases.push(
      entryCase(`5.2.32 hardware exception with vector ${v}`, FAIL_CONTROLS, (s) =>
        inject(s, intrInfo(v, 3, false)),
      ),
    );
  }
  for (const type of [0, 2, 4, 5, 6, 7]) {
    cases.push(
      entryCase(`5.2.35 deliver-error-code with type ${type}`, FAIL_CONTROLS, (s) =>
        inject(s, intrInfo(type === 2 ? 2 : type === 7 ? 0 : 13, type, true), type >= 4 ? 1 : 0),
      ),
    );
  }
  for (let v = 0; v < 32; v++) {
    if (v === 21 || v === 2) continue; // #CP is skipped by kvm-unit-tests; vector 2 is an NMI, not type 3
    for (const withCode of [false, true]) {
      cases.push(
        entryCase(
          `5.2.36 hardware exception ${v} ${withCode ? "with" : "without"} an error code`,
          (s) => (withCode === ERROR_CODE_VECTORS.has(v) || noErrcodeCheck(s) ? "passes" : FAIL_CONTROLS),
          (s) => inject(s, intrInfo(v, 3, withCode)),
        ),
      );
    }
  }
  for (let bit = 12; bit <= 30; bit++) {
    cases.push(
      entryCase(`5.2.37 interruption-information bit ${bit}`, FAIL_CONTROLS, (s) =>
        inject(s, (intrInfo(0, 0, false) | (1 << bit)) >>> 0),
      ),
    );
  }
  for (const code of [0x10000, 0x80000000, 0xffff0000]) {
    cases.push(
      entryCase(`5.2.38 #GP error code 0x${code.toString(16)} (bits 31:16 set)`, FAIL_CONTROLS, (s) =>
        inject(s, intrInfo(13, 3, true), 0, code),
      ),
    );
  }
  for (const type of [4, 5, 6]) {
    for (const length of [16, 0xffffffff, 0]) {
      cases.push(
        entryCase(
          `5.2.39 software event type ${type} with instruction length ${length}`,
          (s) => (length === 0 && (s.caps.misc.lo & (1 << 30)) !== 0 ? "passes" : FAIL_CONTROLS),
          (s) => inject(s, intrInfo(type === 5 ? 1 : 3, type, false), length),
        ),
      );
    }
    cases.push(
      entryCase(`5.2.39 software event type ${type} with instruction length 2`, "passes", (s) =>
        inject(s, intrInfo(type === 5 ? 1 : 3, type, false), 2),
      ),
    );
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------
// §6: host state

function crBitExpectation(s: EntrySetup, cr: 0 | 4, bit: number): "set" | "clear" | null {
  const f0 = cr === 0 ? s.caps.cr0Fixed0 : s.caps.cr4Fixed0;
  const f1 = cr === 0 ? s.caps.cr0Fixed1 : s.caps.cr4Fixed1;
  const word = bit < 32 ? "lo" : "hi";
  const mask = 2 ** (bit % 32);
  if ((f0[word] & mask) !== 0) return "clear"; // must be 1: test it cleared
  if ((f1[word] & mask) === 0) return "set"; // must be 0: test it set
  return null;
}

function hostStateCases(): EntryCase[] {
  const cases: EntryCase[] = [];
  for (const cr of [0, 4] as const) {
    for (let bit = 0; bit < 64; bit++) {
      if (cr === 4 && ((CR4.SMEP | CR4.SMAP) & (bit < 32 ? 2 ** bit : 0)) !== 0) continue;
      cases.push(
        entryCase(
          `6.1–6.3 HOST_CR${cr} bit ${bit} at its illegal value`,
          (s) => (crBitExpectation(s, cr, bit) === null ? "passes" : FAIL_HOST),
          (s) => {
            const what = crBitExpectation(s, cr, bit);
            if (what === null) return "skip";
            const field = `HOST_CR${cr}`;
            const v = s.get(field);
            return s.set(field, what === "set" ? v | pow2(bit) : v & ~pow2(bit));
          },
        ),
      );
    }
  }
  for (let bit = MAXPHY; bit < 64; bit++) {
    cases.push(
      entryCase(`6.4 HOST_CR3 bit ${bit}`, FAIL_HOST, (s) =>
        s.set("HOST_CR3", BigInt(L1.HOST_CR3) | pow2(bit)),
      ),
    );
  }
  for (const field of [
    "HOST_IA32_SYSENTER_ESP",
    "HOST_IA32_SYSENTER_EIP",
    "HOST_FS_BASE",
    "HOST_GS_BASE",
    "HOST_TR_BASE",
    "HOST_GDTR_BASE",
    "HOST_IDTR_BASE",
    "HOST_RIP",
  ]) {
    cases.push(
      entryCase(`6.5/6.15/6.18 ${field} non-canonical`, FAIL_HOST, (s) => s.set(field, NONCANONICAL)),
    );
  }
  const reservedEfer = [1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 14, 15, 16, 31, 32, 63];
  for (const bit of reservedEfer) {
    cases.push(
      entryCase(`6.6 HOST_IA32_EFER bit ${bit} without load-EFER on exit`, "passes", (s) =>
        s
          .bits("VM_EXIT_CONTROLS", 0, X.VM_EXIT_LOAD_IA32_EFER)
          .set("HOST_IA32_EFER", BigInt(LINUX_EFER) | pow2(bit)),
      ),
      entryCase(`6.7 HOST_IA32_EFER bit ${bit} with load-EFER on exit`, { vmfail: [7, 8] }, (s) =>
        s.set("HOST_IA32_EFER", BigInt(LINUX_EFER) | pow2(bit)),
      ),
    );
  }
  for (const [lma, lme] of [
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ] as const) {
    const efer = (LINUX_EFER & ~(EFER.LMA | EFER.LME)) | (lma ? EFER.LMA : 0) | (lme ? EFER.LME : 0);
    cases.push(
      entryCase(
        `6.8 load EFER, 64-bit host, HOST_EFER.LMA ${+lma} LME ${+lme}`,
        lma && lme ? "passes" : { vmfail: [7, 8] },
        (s) => s.set("HOST_IA32_EFER", efer),
      ),
      entryCase(`6.9 no load EFER, HOST_EFER.LMA ${+lma} LME ${+lme}`, "passes", (s) =>
        s.bits("VM_EXIT_CONTROLS", 0, X.VM_EXIT_LOAD_IA32_EFER).set("HOST_IA32_EFER", efer),
      ),
    );
  }
  for (let byte = 0; byte < 8; byte++) {
    for (const value of [0, 1, 2, 3, 4, 5, 6, 7, 8, 0x10, 0x80]) {
      const pat = (0x0007040600070406n & ~(0xffn << BigInt(8 * byte))) | (BigInt(value) << BigInt(8 * byte));
      const legal = value <= 7 && value !== 2 && value !== 3;
      cases.push(
        entryCase(`6.11 load PAT, HOST_PAT byte ${byte} = ${value}`, legal ? "passes" : FAIL_HOST, (s) =>
          s.set("HOST_IA32_PAT", pat),
        ),
      );
      if (byte === 0) {
        cases.push(
          entryCase(`6.10 no load PAT, HOST_PAT byte 0 = ${value}`, "passes", (s) =>
            s.bits("VM_EXIT_CONTROLS", 0, X.VM_EXIT_LOAD_IA32_PAT).set("HOST_IA32_PAT", pat),
          ),
        );
      }
    }
  }
  for (const seg of ["CS", "SS", "DS", "ES", "FS", "GS", "TR"]) {
    for (const [what, bits] of [
      ["RPL bit 0", 1],
      ["TI", 4],
    ] as const) {
      cases.push(
        entryCase(`6.12 HOST_${seg}_SELECTOR with ${what}`, FAIL_HOST, (s) =>
          s.set(`HOST_${seg}_SELECTOR`, Number(s.get(`HOST_${seg}_SELECTOR`)) | bits),
        ),
      );
    }
  }
  for (const seg of ["CS", "TR"]) {
    cases.push(
      entryCase(`6.13 HOST_${seg}_SELECTOR = 0`, FAIL_HOST, (s) => s.set(`HOST_${seg}_SELECTOR`, 0)),
    );
    for (let bit = 3; bit < 16; bit += 2) {
      cases.push(
        entryCase(`6.13 HOST_${seg}_SELECTOR = 1 << ${bit}`, "passes", (s) =>
          s.set(`HOST_${seg}_SELECTOR`, 1 << bit),
        ),
      );
    }
  }
  cases.push(
    entryCase("6.14 HOST_SS_SELECTOR = 0 with a 64-bit host", "passes", (s) => s.set("HOST_SS_SELECTOR", 0)),
    entryCase("6.16 64-bit host and IA-32e guest with HOST_CR4.PCIDE", "passes", (s) =>
      s.set("HOST_CR4", LINUX_CR4 | CR4.PCIDE),
    ),
    entryCase("6.17 64-bit host with HOST_CR4.PAE clear", FAIL_HOST, (s) =>
      s.set("HOST_CR4", LINUX_CR4 & ~CR4.PAE),
    ),
  );
  for (let bit = 0; bit < 64; bit += 3) {
    cases.push(
      entryCase(`6.19 no load PERF_GLOBAL_CTRL, value 1 << ${bit}`, "passes", (s) =>
        s
          .bits("VM_EXIT_CONTROLS", 0, X.VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL)
          .set("HOST_IA32_PERF_GLOBAL_CTRL", pow2(bit)),
      ),
    );
  }
  for (const bit of [0, 7, 8, 31, 32, 34, 35, 40, 63]) {
    // The world's L1 has 8 general-purpose counters (bits 7:0) and 3 fixed ones (bits 34:32).
    const valid = bit <= 7 || (bit >= 32 && bit <= 34);
    cases.push(
      entryCase(`6.20 load PERF_GLOBAL_CTRL, value 1 << ${bit}`, valid ? "passes" : FAIL_HOST, (s) =>
        s
          .bits("VM_EXIT_CONTROLS", X.VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL)
          .set("HOST_IA32_PERF_GLOBAL_CTRL", pow2(bit)),
      ),
    );
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------
// §7: guest state

function guestStateCases(): EntryCase[] {
  const cases: EntryCase[] = [];
  for (const field of [
    "GUEST_SYSENTER_ESP",
    "GUEST_SYSENTER_EIP",
    "GUEST_TR_BASE",
    "GUEST_FS_BASE",
    "GUEST_GS_BASE",
    "GUEST_GDTR_BASE",
    "GUEST_IDTR_BASE",
  ]) {
    cases.push(
      entryCase(`7.1/7.15/7.19 ${field} non-canonical`, FAIL_GUEST, (s) => s.set(field, NONCANONICAL)),
    );
  }
  for (let bit = 0; bit < 64; bit += 4) {
    cases.push(
      entryCase(`7.2 no load debug controls, GUEST_DR7 bit ${bit}`, "enters", (s) =>
        s.bits("VM_ENTRY_CONTROLS", 0, N.VM_ENTRY_LOAD_DEBUG_CONTROLS).set("GUEST_DR7", pow2(bit) | 0x400n),
      ),
      entryCase(`7.3 load debug controls, GUEST_DR7 bit ${bit}`, bit >= 32 ? FAIL_GUEST : "enters", (s) =>
        s.bits("VM_ENTRY_CONTROLS", N.VM_ENTRY_LOAD_DEBUG_CONTROLS).set("GUEST_DR7", pow2(bit) | 0x400n),
      ),
    );
  }
  for (const value of [0, 1, 2, 3, 4, 5, 6, 7, 8, 0x40]) {
    const pat = (0x0007040600070406n & ~0xffn) | BigInt(value);
    const legal = value <= 7 && value !== 2 && value !== 3;
    cases.push(
      entryCase(`7.4 no load PAT on entry, GUEST_PAT byte 0 = ${value}`, "enters", (s) =>
        s.bits("VM_ENTRY_CONTROLS", 0, N.VM_ENTRY_LOAD_IA32_PAT).set("GUEST_IA32_PAT", pat),
      ),
      entryCase(`7.5 load PAT on entry, GUEST_PAT byte 0 = ${value}`, legal ? "enters" : FAIL_GUEST, (s) =>
        s.bits("VM_ENTRY_CONTROLS", N.VM_ENTRY_LOAD_IA32_PAT).set("GUEST_IA32_PAT", pat),
      ),
    );
  }
  for (const bit of [1, 2, 7, 9, 12, 16, 31, 32, 63]) {
    cases.push(
      entryCase(`7.6 no load EFER on entry, GUEST_EFER bit ${bit}`, "enters", (s) =>
        s
          .bits("VM_ENTRY_CONTROLS", 0, N.VM_ENTRY_LOAD_IA32_EFER)
          .set("GUEST_IA32_EFER", BigInt(LINUX_EFER) | pow2(bit)),
      ),
      entryCase(`7.7 load EFER on entry, GUEST_EFER bit ${bit}`, FAIL_GUEST, (s) =>
        s.set("GUEST_IA32_EFER", BigInt(LINUX_EFER) | pow2(bit)),
      ),
    );
  }
  for (const [lma, lme] of [
    [false, true],
    [true, false],
    [false, false],
  ] as const) {
    const efer = (LINUX_EFER & ~(EFER.LMA | EFER.LME)) | (lma ? EFER.LMA : 0) | (lme ? EFER.LME : 0);
    cases.push(
      entryCase(`7.8 load EFER, IA-32e guest, GUEST_EFER.LMA ${+lma} LME ${+lme}`, FAIL_GUEST, (s) =>
        s.set("GUEST_IA32_EFER", efer),
      ),
    );
  }
  cases.push(
    entryCase("7.9 load PERF_GLOBAL_CTRL on entry with an unimplemented bit", FAIL_GUEST, (s) =>
      s
        .bits("VM_ENTRY_CONTROLS", N.VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL)
        .set("GUEST_IA32_PERF_GLOBAL_CTRL", pow2(40)),
    ),
    entryCase("7.9 load PERF_GLOBAL_CTRL on entry with implemented bits", "enters", (s) =>
      s
        .bits("VM_ENTRY_CONTROLS", N.VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL)
        .set("GUEST_IA32_PERF_GLOBAL_CTRL", 0x7_0000_00ffn),
    ),
    entryCase("7.11 GUEST_TR_SELECTOR with TI set", FAIL_GUEST, (s) => s.set("GUEST_TR_SELECTOR", 0x18 | 4)),
    entryCase("7.12 unusable LDTR with TI set", "enters", (s) =>
      s.set("GUEST_LDTR_AR_BYTES", 0x10000).set("GUEST_LDTR_SELECTOR", 4),
    ),
    entryCase("7.12 usable LDTR with TI set", FAIL_GUEST, (s) => s.set("GUEST_LDTR_SELECTOR", 4)),
    entryCase("7.13 SS.RPL ≠ CS.RPL without unrestricted guest", FAIL_GUEST, (s) =>
      s.set("GUEST_SS_SELECTOR", 0x13),
    ),
    entryCase("7.13 SS.RPL ≠ CS.RPL with SS unusable", FAIL_GUEST, (s) =>
      s.set("GUEST_SS_SELECTOR", 0x13).set("GUEST_SS_AR_BYTES", 0x10000),
    ),
    entryCase("7.16 LDTR base non-canonical, LDTR usable", FAIL_GUEST, (s) =>
      s.set("GUEST_LDTR_BASE", NONCANONICAL),
    ),
    entryCase("7.16 LDTR base non-canonical, LDTR unusable", "enters", (s) =>
      s.set("GUEST_LDTR_AR_BYTES", 0x10000).set("GUEST_LDTR_BASE", NONCANONICAL),
    ),
  );
  for (let bit = 32; bit < 64; bit += 4) {
    cases.push(
      entryCase(`7.17 GUEST_CS_BASE bit ${bit}`, FAIL_GUEST, (s) => s.set("GUEST_CS_BASE", pow2(bit))),
    );
    for (const seg of ["SS", "DS", "ES"]) {
      cases.push(
        entryCase(`7.18 GUEST_${seg}_BASE bit ${bit}, usable`, FAIL_GUEST, (s) =>
          s.set(`GUEST_${seg}_BASE`, pow2(bit)),
        ),
        entryCase(`7.18 GUEST_${seg}_BASE bit ${bit}, unusable`, "enters", (s) =>
          s.set(`GUEST_${seg}_AR_BYTES`, 0x10000).set(`GUEST_${seg}_BASE`, pow2(bit)),
        ),
      );
    }
  }
  for (const dt of ["GDTR", "IDTR"]) {
    for (const bit of [16, 20, 31]) {
      cases.push(
        entryCase(`7.20 GUEST_${dt}_LIMIT bit ${bit}`, FAIL_GUEST, (s) =>
          s.set(`GUEST_${dt}_LIMIT`, 2 ** bit),
        ),
      );
    }
  }
  // 7.22: a 32-bit PAE guest without EPT: the PDPTEs come from guest memory at CR3 (SDM 27.3.1.6).
  const paeGuest = (s: EntrySetup, pdpte: number, hi: number) => {
    for (let i = 0; i < 4; i++)
      s.world.memory.write64(L1.GUEST_PDPT + 8 * i, i === 1 ? pdpte : 0, i === 1 ? hi : 0);
    return s
      .bits("VM_ENTRY_CONTROLS", 0, N.VM_ENTRY_IA32E_MODE)
      .set("GUEST_IA32_EFER", EFER.SCE | EFER.NXE)
      .set("GUEST_CS_AR_BYTES", 0xc09b)
      .set("GUEST_CR4", LINUX_CR4 & ~CR4.PCIDE)
      .set("GUEST_CR3", L1.GUEST_PDPT);
  };
  cases.push(entryCase("7.22 PAE guest with valid PDPTEs", "enters", (s) => paeGuest(s, 0x5000 | 1, 0)));
  for (const bit of [52, 55, 62]) {
    cases.push(
      entryCase(`7.22 PAE guest, PDPTE1 bit ${bit}`, { exit: 33, qualification: 2 }, (s) =>
        paeGuest(s, 0x5000 | 1, 2 ** (bit - 32)),
      ),
    );
  }
  for (const bit of [9, 10, 11]) {
    cases.push(
      entryCase(`7.22 PAE guest, PDPTE1 ignored bit ${bit}`, "enters", (s) =>
        paeGuest(s, 0x5000 | 1 | (1 << bit), 0),
      ),
    );
  }
  cases.push(
    entryCase("7.22 PAE guest, PDPTE1 bit 63 with EFER.NX clear", { exit: 33, qualification: 2 }, (s) =>
      paeGuest(s, 0x5000 | 1, 0x8000_0000).set("GUEST_IA32_EFER", EFER.SCE),
    ),
    entryCase("7.21 PAE guest, CR3 bits 4:0 are ignored", "enters", (s) =>
      paeGuest(s, 0x5000 | 1, 0).set("GUEST_CR3", L1.GUEST_PDPT | 0x18),
    ),
    entryCase("7.24 unrestricted guest with paging off enters", "enters", (s) =>
      s
        .ept()
        .secondary(S2.SECONDARY_EXEC_UNRESTRICTED_GUEST)
        .bits("VM_ENTRY_CONTROLS", 0, N.VM_ENTRY_IA32E_MODE)
        .set("GUEST_IA32_EFER", EFER.SCE)
        .set("GUEST_CS_AR_BYTES", 0xc09b)
        .set("GUEST_CR0", (CR0.ET | CR0.NE) >>> 0)
        .set("GUEST_CR4", CR4.VMXE),
    ),
    entryCase("7.14 SS.RPL ≠ CS.RPL with unrestricted guest", "enters", (s) =>
      s.ept().secondary(S2.SECONDARY_EXEC_UNRESTRICTED_GUEST).set("GUEST_SS_SELECTOR", 0x13),
    ),
  );
  // 7.25–7.26: the VM-entry MSR-load list.
  const msrList = (s: EntrySetup, entries: [number, number, bigint][], at = L1.MSR_LIST) => {
    entries.forEach(([index, reserved, value], i) => {
      s.world.memory.write32(at + 16 * i, index);
      s.world.memory.write32(at + 16 * i + 4, reserved);
      s.world.memory.write64(at + 16 * i + 8, Number(value & 0xffffffffn), Number(value >> 32n));
    });
    return s.set("VM_ENTRY_MSR_LOAD_ADDR", at).set("VM_ENTRY_MSR_LOAD_COUNT", entries.length);
  };
  cases.push(
    entryCase("7.25 MSR-load list with FS_BASE as entry 1", { exit: 34, qualification: 1 }, (s) =>
      msrList(s, [[0xc0000100, 0, 0n]]),
    ),
    entryCase("7.25 MSR-load list with FS_BASE as entry 2", { exit: 34, qualification: 2 }, (s) =>
      msrList(s, [
        [0xc0000102, 0, 0n],
        [0xc0000100, 0, 0n],
      ]),
    ),
    entryCase("MSR-load list entry with reserved bits set", { exit: 34, qualification: 1 }, (s) =>
      msrList(s, [[0xc0000102, 1, 0n]]),
    ),
    entryCase("MSR-load list with KERNEL_GS_BASE enters", "enters", (s) =>
      msrList(s, [[0xc0000102, 0, 0xffff888000000000n]]),
    ),
    entryCase("7.26 MSR-load list at an unbacked address", { exit: 34, qualification: 1 }, (s) =>
      s.set("VM_ENTRY_MSR_LOAD_ADDR", 0x13370000).set("VM_ENTRY_MSR_LOAD_COUNT", 1),
    ),
  );
  cases.push(entryCase("the baseline enters", "enters", () => undefined));
  return cases;
}

/** The `vmx-checks` suite: kvm-unit-tests x86/vmx_tests.c VM-entry checks (vmx-tests.md §5–7). */
export const VMX_CHECKS_SUITE: Suite = {
  name: "vmx-checks",
  description:
    "kvm-unit-tests x86/vmx_tests.c: control, host-state and guest-state VM-entry checks (vmx-tests.md §5–7)",
  groups() {
    return [
      entryGroup(
        "vmx-checks/control-bits",
        "reserved and required bits of the five control fields (§5.1)",
        controlBitCases(),
      ),
      entryGroup("vmx-checks/cr3-targets", "CR3-target count (§5.2.1)", cr3TargetCases()),
      entryGroup(
        "vmx-checks/addresses",
        "I/O and MSR bitmaps, virtual-APIC, APIC-access and PML addresses (§5.2.3–5.2.6, 5.2.25)",
        addressCases(),
      ),
      entryGroup(
        "vmx-checks/apic-virtualization",
        "TPR shadow, x2APIC, VID, posted interrupts, TPR threshold (§5.2.7–5.2.15)",
        apicCases(),
      ),
      entryGroup(
        "vmx-checks/misc-controls",
        "NMI controls, VPID, unrestricted guest, MBEC, PML, preemption timer (§5.2.13, 5.2.16–5.2.26)",
        miscControlCases(),
      ),
      entryGroup("vmx-checks/eptp", "EPT pointer (§5.2.18–5.2.22)", eptpCases()),
      entryGroup(
        "vmx-checks/msr-lists",
        "VM-exit MSR-store and VM-entry MSR-load addresses (§5.2.27–5.2.28)",
        msrListCases(),
      ),
      entryGroup(
        "vmx-checks/event-injection",
        "VM-entry interruption information (§5.2.29–5.2.39)",
        eventInjectionCases(),
      ),
      entryGroup("vmx-checks/host-state", "host-state area (§6)", hostStateCases()),
      entryGroup("vmx-checks/guest-state", "guest-state area and the MSR-load list (§7)", guestStateCases()),
    ];
  },
};
