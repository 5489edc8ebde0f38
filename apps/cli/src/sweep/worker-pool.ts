import { Worker } from "node:worker_threads";
import { CliError } from "../framework/errors";
import type { GridCell } from "./grid";
import type { SweepRow } from "./sweep-row";
import type { CellReply, CellRequest, SweepWorkerData } from "./worker-protocol";

/**
 * A pool of `jobs` worker threads running sweep cells. Each worker gets one cell at a time and the
 * next as soon as it replies, so long and short cells balance out. The first failure stops the
 * pool (the workers are terminated) and rejects with the cell's message.
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
    let next = 0;
    let done = 0;
    let failed = false;
    const stop = (error: unknown): void => {
      if (failed) return;
      failed = true;
      for (const w of workers) void w.terminate();
      reject(error);
    };
    const feed = (worker: Worker): void => {
      if (next >= cells.length) {
        void worker.terminate();
        return;
      }
      const request: CellRequest = { cell: cells[next++]! };
      worker.postMessage(request);
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
          for (const w of workers) void w.terminate();
          resolve();
          return;
        }
        feed(worker);
      });
      worker.on("error", (error) => stop(error));
      worker.on("exit", (code) => {
        if (!failed && done < cells.length && code !== 0 && code !== 1)
          stop(new Error(`a sweep worker exited with code ${code}`));
      });
      feed(worker);
    }
  });
}
