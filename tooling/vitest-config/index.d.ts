import type { UserWorkspaceConfig } from "vitest/config";
export declare const SOURCE_CONDITION: "@nestvisor/source";
export declare function nestvisorProject(overrides?: UserWorkspaceConfig): UserWorkspaceConfig;
