import { type Meter, VmcsProcessor } from "@nestvisor/vmx";
import { SparseMemory } from "@nestvisor/x86-arch";
import { GUEST_KIND, GuestContext } from "./guest-context";
import { buildGuestPageTables, GUEST_TABLE_SPARE_PAGES, guestPageTablePages } from "./guest-page-tables";
import { HardwareVmxCpu } from "./hardware-vmx-cpu";
import type { KvmConfig } from "./hypervisor-config";
import { type GuestBootState, HYPERVISOR_BOOT_STATE, KVM_PRIVATE_BYTES, Kvm } from "./kvm";
import type { ModelPolicies } from "./model-policies";
import { NestedVmxCpu, offersVmcsShadowing } from "./nested-vmx-cpu";
import { NOOP_TRACER, type Tracer } from "./tracer";
import { RIP_BASE, WorkloadExecutor } from "./workload-executor";
import type { WorkloadProgram } from "./workload-ops";

const PAGE = 4096;

export interface MachineOptions {
  readonly program: WorkloadProgram;
  readonly config: KvmConfig;
  /**
   * The configuration of the guest hypervisors (L1, L2), when it differs from L0's: a guest
   * hypervisor is its own kernel, so a flag that changes its behaviour changes what L0 sees of it.
   * Default: `config`.
   */
  readonly innerConfig?: KvmConfig;
  /** Where every level counts its work (a `CostAccumulator` attributes it to levels and exits). */
  readonly meter: Meter;
  readonly tracer?: Tracer;
  /** Policies replacing KVM's (root cache, nested sync, exit reflection) at every level. */
  readonly policies?: ModelPolicies;
}

/**
 * A machine (DESIGN.md §3): host memory, the physical CPU, one KVM per hypervisor level and the
 * workload's vCPU at the innermost level. Level n's guest memory lives inside level n−1's physical
 * memory (KVM's private pages first, then the guest's RAM), so L1's EPT tables, L2's page tables and
 * every vmcs12 are real bytes in the memory above them. Building the machine boots every level up to
 * the workload's first instruction: VMXON, VMCS set-up and the first VM entry at each level, through
 * the same exits a real boot takes.
 */
export class Machine {
  readonly program: WorkloadProgram;
  readonly config: KvmConfig;
  readonly meter: Meter;
  readonly hardware: HardwareVmxCpu;
  /** kvms[k] is the KVM at level k (0 = L0). */
  readonly kvms: readonly Kvm[];
  /** contexts[k - 1] is the vCPU at level k; the last one runs the workload. */
  readonly contexts: readonly GuestContext[];
  readonly executor: WorkloadExecutor;
  readonly level: number;

  constructor(options: MachineOptions) {
    const { program, config, meter } = options;
    const tracer = options.tracer ?? NOOP_TRACER;
    if (!config.ept && program.setup.level > 1) {
      throw new RangeError(
        "ept=off with a nested guest (shadow paging at L0 under a guest hypervisor, shadow-on-shadow) is not modelled; use ept=on or a level-1 workload",
      );
    }
    this.program = program;
    this.config = config;
    this.meter = meter;
    const level = program.setup.level;
    this.level = level;
    const setup = program.setup;
    const tablePages = guestPageTablePages(setup) + GUEST_TABLE_SPARE_PAGES;
    const leafBytes = setup.memoryBytes + tablePages * PAGE;
    // sizes[k] = bytes of level k's physical memory (k = level: the workload's).
    const sizes: number[] = new Array<number>(level + 1).fill(0);
    sizes[level] = leafBytes;
    for (let k = level - 1; k >= 0; k--) sizes[k] = KVM_PRIVATE_BYTES + sizes[k + 1]!;
    const host = new SparseMemory();
    if (sizes[0]! > host.size) throw new RangeError(`the machine needs ${sizes[0]} bytes of host memory`);
    const processor = new VmcsProcessor({ meter });
    this.hardware = new HardwareVmxCpu(processor, host, tracer);

    const contexts: GuestContext[] = [];
    for (let k = 1; k <= level; k++) {
      const kind = k === level ? GUEST_KIND.WORKLOAD : GUEST_KIND.HYPERVISOR;
      contexts.push(new GuestContext(k === level ? program.name : `L${k}`, k, kind));
    }
    this.contexts = contexts;

    const kvms: Kvm[] = [];
    const boots: GuestBootState[] = [];
    for (let k = 0; k < level; k++) {
      const guest = contexts[k]!;
      const boot = k + 1 === level ? this.#workloadBoot(0) : HYPERVISOR_BOOT_STATE;
      boots.push(boot);
      const cpu =
        k === 0
          ? this.hardware
          : new NestedVmxCpu(this.hardware, contexts[k - 1]!, parentView(kvms[k - 1]!), meter, {
              // What the parent's capability MSRs offer (kvm: nested_vmx_setup_ctls_msrs); the guest
              // hypervisor uses it only when its own shadowVmcs switch is on (kvm: enable_shadow_vmcs).
              vmcsShadowing: offersVmcsShadowing(kvms[k - 1]!.caps),
            });
      if (k > 0) kvms[k - 1]!.guestCpu = cpu;
      kvms.push(
        new Kvm({
          name: `L${k}`,
          level: k,
          cpu,
          config: k === 0 ? config : (options.innerConfig ?? config),
          meter,
          guest,
          guestBoot: boot,
          guestMemoryBytes: sizes[k + 1]!,
          // A guest hypervisor gets EPT only when its parent uses EPT (nested EPT).
          cpuOffersEpt: k === 0 ? true : kvms[k - 1]!.useEpt,
          ledger: this.hardware.ledger,
          ...(options.policies === undefined ? {} : { policies: options.policies }),
        }),
      );
    }
    this.kvms = kvms;

    // The workload's page tables, in its own guest-physical memory above its RAM.
    const leafMemory = kvms[level - 1]!.guestMemory();
    const tables = buildGuestPageTables(setup, leafMemory, { base: setup.memoryBytes, pages: tablePages });
    const roots = tables.roots;
    boots[level - 1] = this.#workloadBoot(roots[setup.initialAddressSpace] ?? 0);
    kvms[level - 1]!.mmu.setCr3(boots[level - 1]!.cr3);

    // Boot: each level creates its vCPU and enters its guest; inner levels run as that guest.
    for (let k = 0; k < level; k++) {
      kvms[k]!.createVcpu(boots[k]!);
      kvms[k]!.enterGuest();
      this.hardware.drive();
    }
    this.executor = new WorkloadExecutor(this.hardware, program, contexts[level - 1]!, roots, meter);
  }

  #workloadBoot(cr3: number): GuestBootState {
    const s = this.program.setup;
    return { cr0: s.cr0, cr3, cr4: s.cr4, efer: s.efer, rip: RIP_BASE, cpl: s.cpl };
  }

  /**
   * Starts counting from zero (after the boot): resets the meter when it can be reset (a
   * `CostAccumulator` or `CountingMeter`), zeroes the TLB's counters, forgets open exits, and charges
   * work to the running level.
   */
  resetAccounting(): void {
    const meter = this.meter as Meter & { reset?: () => void; setLevel?: (level: number) => void };
    this.hardware.ledger.reset();
    this.hardware.tlb.clearStats();
    meter.reset?.();
    meter.setLevel?.(this.hardware.running?.level ?? 0);
  }

  /** Runs the workload to its end. */
  run(): void {
    this.executor.run();
  }
}

function parentView(kvm: Kvm) {
  return { memory: kvm.guestMemory(), memslots: kvm.memslots, store: kvm.store, usesEpt: kvm.useEpt };
}
