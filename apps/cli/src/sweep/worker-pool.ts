import { Worker } from "node:worker_threads";
import { CliError, EXIT } from "../framework/errors";
import { describeCell, type GridCell } from "./grid";
import type { SweepRow } from "./sweep-row";
import type { CellReply, CellRequest, SweepWorkerData } from "./worker-protocol";

/**
 * A pool of `jobs` worker threads running sweep cells. Each worker gets one cell at a time and the
 * next as soon as it replies, so long and short cells balance out. The first failure stops the
 * pool (the workers are terminated) and rejects with the cell's message; a worker that exits
 * without being told to (process.exit() in a model module) is a failure naming its cell.
 */

/** How to start a worker: a script (URL) or module code to evaluate, with Node options. */
export interface WorkerEntry {
  readonly target: URL | string;
  readonly eval: boolean;
  readonly execArgv: readonly string[];
}

/**
 * Where the worker entry is: `sweep-worker.js` next to this module in the bundle (tsup builds it as
 * its own entry); when this module runs from its TypeScript source (the unit tests), a small module
 * that registers tsx's loader and imports `sweep-worker.ts`, with the workspace packages resolved
 * to their sources as the tests do.
 */
export function workerEntry(from: string = import.meta.url): WorkerEntry {
  if (from.endsWith(".ts")) {
    const source = new URL("./sweep-worker.ts", from).href;
    return {
      target: `import { register } from "tsx/esm/api"; register(); await import(${JSON.stringify(source)});`,
      eval: true,
      execArgv: ["--conditions", "@nestvisor/source"],
    };
  }
  return { target: new URL("./sweep-worker.js", from), eval: false, execArgv: [] };
}

export interface PoolOptions {
  readonly jobs: number;
  readonly data: SweepWorkerData;
  readonly cells: readonly GridCell[];
  /** Called in the main thread as each cell's row arrives (in completion order). */
  onRow(row: SweepRow): void;
  readonly entry?: WorkerEntry;
}

export function runPool(options: PoolOptions): Promise<void> {
  const { cells } = options;
  const entry = options.entry ?? workerEntry();
  const size = Math.max(1, Math.min(options.jobs, cells.length));
  if (cells.length === 0) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const workers: Worker[] = [];
    /** Workers this pool terminated: their exit (code 1 from terminate()) is expected. */
    const terminated = new Set<Worker>();
    /** The cell each worker is running. */
    const running = new Map<Worker, GridCell>();
    let next = 0;
    let done = 0;
    let failed = false;
    const terminate = (worker: Worker): void => {
      if (terminated.has(worker)) return;
      terminated.add(worker);
      running.delete(worker);
      void worker.terminate();
    };
    const stop = (error: unknown): void => {
      if (failed) return;
      failed = true;
      for (const w of workers) terminate(w);
      reject(error);
    };
    const feed = (worker: Worker): void => {
      if (next >= cells.length) {
        terminate(worker);
        return;
      }
      const cell = cells[next++]!;
      running.set(worker, cell);
      const request: CellRequest = { cell };
      worker.postMessage(request);
    };
    /** "cell 7 (cpuid L2 v6.12 intel-server)", or "no cell" for a worker between cells. */
    const cellOf = (worker: Worker): string => {
      const cell = running.get(worker);
      return cell === undefined ? "no cell" : `cell ${cell.index} (${describeCell(cell.params)})`;
    };
    for (let i = 0; i < size; i++) {
      const worker = new Worker(entry.target, {
        eval: entry.eval,
        workerData: options.data,
        execArgv: [...entry.execArgv],
      });
      workers.push(worker);
      worker.on("message", (reply: CellReply) => {
        if (failed) return;
        running.delete(worker);
        if (!reply.ok) {
          stop(new CliError(reply.message, reply.exitCode));
          return;
        }
        try {
          options.onRow(reply.row);
        } catch (error) {
          stop(error);
          return;
        }
        done++;
        if (done === cells.length) {
          for (const w of workers) terminate(w);
          resolve();
          return;
        }
        feed(worker);
      });
      // An exception nothing caught in the worker (a model's timer callback, say): the worker stops.
      worker.on("error", (error) => {
        if (failed || terminated.has(worker)) return;
        stop(
          new CliError(
            `sweep worker failed running ${cellOf(worker)}: ${error instanceof Error ? error.message : String(error)}`,
            EXIT.FAILED,
          ),
        );
      });
      // Any exit the pool did not ask for (process.exit() in a model module, whatever its code, or a
      // crash) leaves its cell without a row: the sweep fails naming the cell, instead of waiting for
      // a row that never comes.
      worker.on("exit", (code) => {
        if (failed || terminated.has(worker)) return;
        stop(new CliError(`sweep worker died running ${cellOf(worker)} with exit code ${code}`, EXIT.FAILED));
      });
      feed(worker);
    }
  });
}
