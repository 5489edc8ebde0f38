import type { GridCell } from "./grid";
import type { SweepRow } from "./sweep-row";

/** Messages between `nestvisor sweep` and its worker threads. */

/** Given to each worker when it starts. */
export interface SweepWorkerData {
  /** Where relative workload, profile and model paths are resolved. */
  readonly cwd: string;
  readonly grid: string;
  readonly gridCells: number;
}

/** main → worker: run this cell. */
export interface CellRequest {
  readonly cell: GridCell;
}

/** worker → main: the cell's row, or why it failed (message and exit code). */
export type CellReply =
  | { readonly ok: true; readonly index: number; readonly row: SweepRow }
  | { readonly ok: false; readonly index: number; readonly message: string; readonly exitCode: 1 | 2 };
