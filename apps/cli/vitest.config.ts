import { nestvisorProject } from "@nestvisor/vitest-config";

// The command tests spawn the built binary: the global setup builds dist/ first when it is missing
// or older than any source it bundles.
export default nestvisorProject({
  test: {
    globalSetup: ["./test/build-binary.ts"],
    testTimeout: 60_000,
  },
});
