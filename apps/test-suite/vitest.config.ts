import { nestvisorProject } from "@nestvisor/vitest-config";

export default nestvisorProject({ test: { testTimeout: 60_000, hookTimeout: 120_000 } });
