import { nestvisorProject } from "@nestvisor/vitest-config";

export default nestvisorProject();
