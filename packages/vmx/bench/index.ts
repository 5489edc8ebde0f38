import { measure, renderTable } from "@nestvisor/bench";
import { VMCS12_ACCESS_TARGET, vmcs12BenchCases } from "./vmcs12.bench";

const targets: Record<string, number> = {
  "vmcs12 VMREAD+VMWRITE by encoding": VMCS12_ACCESS_TARGET,
};

const results = vmcs12BenchCases().map((bench) => {
  const result = measure(bench);
  const target = targets[bench.name];
  return target === undefined ? result : { ...result, target };
});

console.log(renderTable("@nestvisor/vmx", results));
