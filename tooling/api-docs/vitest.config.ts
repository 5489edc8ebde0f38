import { nestvisorProject } from "@nestvisor/vitest-config";

// The steps spawn pnpm, npm, tsc or typedoc synchronously; on a loaded 2-core machine they can
// take minutes, and the limits are only there to catch a hang.
export default nestvisorProject({ test: { testTimeout: 300_000, hookTimeout: 600_000 } });
