import { measure, renderTable } from "@nestvisor/bench";
import {
  HARDWARE_VMCS_ACCESS_TARGET,
  HARDWARE_VMCS_COUNTED_ACCESS_TARGET,
  hardwareVmcsBenchCases,
} from "./hardware-vmcs.bench";
import { VMCS12_ACCESS_TARGET, vmcs12BenchCases } from "./vmcs12.bench";

const targets: Record<string, number> = {
  "vmcs12 VMREAD+VMWRITE by encoding": VMCS12_ACCESS_TARGET,
  "hardware VMREAD+VMWRITE (no-op meter)": HARDWARE_VMCS_ACCESS_TARGET,
  "hardware VMREAD+VMWRITE (counting meter)": HARDWARE_VMCS_COUNTED_ACCESS_TARGET,
};

const results = [...vmcs12BenchCases(), ...hardwareVmcsBenchCases()].map((bench) => {
  const result = measure(bench);
  const target = targets[bench.name];
  return target === undefined ? result : { ...result, target };
});

console.log(renderTable("@nestvisor/vmx", results));
