import type { Options } from "tsup";
export declare function nestvisorLibrary(options?: {
  entry?: Record<string, string> | string[];
}): Options | Options[];
