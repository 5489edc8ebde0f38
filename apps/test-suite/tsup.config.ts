import { nestvisorLibrary } from "@nestvisor/tsup-config";

// The library (index) and the `nestvisor-test-suite` command (cli, with its hashbang).
export default nestvisorLibrary({ entry: { index: "src/index.ts", cli: "src/cli.ts" } });
