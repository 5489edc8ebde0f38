import { nestvisorProject } from "@nestvisor/vitest-config";

// Each example directory holds its model module, README and test.
export default nestvisorProject({
  test: {
    include: ["*/**/*.test.ts"],
    testTimeout: 30_000,
  },
});
