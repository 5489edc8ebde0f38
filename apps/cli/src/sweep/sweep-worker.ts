import { parentPort, workerData } from "node:worker_threads";
import { CliError } from "../framework/errors";
import { CellRunner } from "./cell-runner";
import type { CellReply, CellRequest, SweepWorkerData } from "./worker-protocol";

/**
 * The entry of a `nestvisor sweep` worker thread (built as its own file, dist/sweep-worker.js): runs
 * the cells the main thread sends, one at a time, and replies with each row.
 */
const port = parentPort;
if (port === null) throw new Error("sweep-worker runs as a worker thread of nestvisor sweep");
const data = workerData as SweepWorkerData;
const runner = new CellRunner(data.cwd);

port.on("message", (request: CellRequest) => {
  const { cell } = request;
  runner
    .run(cell, { grid: data.grid, gridCells: data.gridCells })
    .then(
      (row): CellReply => ({ ok: true, index: cell.index, row }),
      (error: unknown): CellReply => ({
        ok: false,
        index: cell.index,
        message: error instanceof Error ? error.message : String(error),
        exitCode: error instanceof CliError ? (error.exitCode === 2 ? 2 : 1) : 1,
      }),
    )
    .then((reply) => port.postMessage(reply));
});
