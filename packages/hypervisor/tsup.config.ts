import { nestvisorLibrary } from "@nestvisor/tsup-config";

export default nestvisorLibrary();
