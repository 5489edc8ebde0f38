import { measure, renderTable } from "@nestvisor/bench";
import {
  ENTRY_CHECK_CASES,
  ENTRY_CHECK_INCREMENTAL_TARGET,
  entryCheckBenchCases,
  entryCheckRatios,
} from "./entry-checks.bench";
import {
  HARDWARE_VMCS_ACCESS_TARGET,
  HARDWARE_VMCS_COUNTED_ACCESS_TARGET,
  hardwareVmcsBenchCases,
} from "./hardware-vmcs.bench";
import { SHADOW_VMCS_COPY_PAIR_TARGET, shadowVmcsBenchCases } from "./shadow-vmcs.bench";
import { VMCS12_ACCESS_TARGET, vmcs12BenchCases } from "./vmcs12.bench";

const targets: Record<string, number> = {
  "vmcs12 VMREAD+VMWRITE by encoding": VMCS12_ACCESS_TARGET,
  "hardware VMREAD+VMWRITE (no-op meter)": HARDWARE_VMCS_ACCESS_TARGET,
  "hardware VMREAD+VMWRITE (counting meter)": HARDWARE_VMCS_COUNTED_ACCESS_TARGET,
  "copy_vmcs12_to_shadow + copy_shadow_to_vmcs12 pair": SHADOW_VMCS_COPY_PAIR_TARGET,
  [ENTRY_CHECK_CASES.INCREMENTAL]: ENTRY_CHECK_INCREMENTAL_TARGET,
};

const results = [
  ...vmcs12BenchCases(),
  ...hardwareVmcsBenchCases(),
  ...shadowVmcsBenchCases(),
  ...entryCheckBenchCases(),
].map((bench) => {
  const result = measure(bench);
  const target = targets[bench.name];
  return target === undefined ? result : { ...result, target };
});

console.log(renderTable("@nestvisor/vmx", results));
for (const line of entryCheckRatios(results)) console.log(line);
