/**
 * Progress on stderr for work that takes more than a second. The model runs synchronously, so no
 * timer can fire while it works: the caller reports each step with `tick`, and the first line is
 * drawn only once a second has passed since `start`. On a terminal the line is redrawn in place
 * and erased at the end; elsewhere (a log file, a test) progress is written only when forced with
 * NESTVISOR_PROGRESS=1, one line per update at most twice a second.
 */
export interface ProgressSink {
  readonly isTTY?: boolean | undefined;
  write(text: string): unknown;
}

export interface ProgressOptions {
  readonly enabled: boolean;
  /** Milliseconds before anything is shown (default 1000). */
  readonly delayMs?: number;
  readonly now?: () => number;
}

export class Progress {
  readonly #sink: ProgressSink;
  readonly #enabled: boolean;
  readonly #delay: number;
  readonly #now: () => number;
  readonly #label: string;
  #start = 0;
  #total = 0;
  #lastDraw = Number.NEGATIVE_INFINITY;
  #drawn = false;

  constructor(sink: ProgressSink, label: string, options: ProgressOptions) {
    this.#sink = sink;
    this.#label = label;
    this.#enabled = options.enabled;
    this.#delay = options.delayMs ?? 1000;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Starts timing `total` steps. */
  start(total: number): void {
    this.#start = this.#now();
    this.#total = total;
  }

  /** `done` steps are finished; `what` names the one running now. */
  tick(done: number, what: string): void {
    if (!this.#enabled) return;
    const now = this.#now();
    if (now - this.#start < this.#delay) return;
    const tty = this.#sink.isTTY === true;
    if (!tty && now - this.#lastDraw < 500) return;
    this.#lastDraw = now;
    const seconds = ((now - this.#start) / 1000).toFixed(1);
    const text = `${this.#label}: ${done}/${this.#total} ${what} (${seconds} s)`;
    if (tty) this.#sink.write(`\r\u001b[2K${text.slice(0, 99)}`);
    else this.#sink.write(`${text}\n`);
    this.#drawn = true;
  }

  /** Erases the progress line (on a terminal). */
  finish(): void {
    if (this.#drawn && this.#sink.isTTY === true) this.#sink.write("\r\u001b[2K");
    this.#drawn = false;
  }
}

/** Whether progress may be shown on a stream in this environment. */
export function progressEnabled(
  sink: ProgressSink,
  env: Readonly<Record<string, string | undefined>>,
): boolean {
  if (env.NESTVISOR_PROGRESS === "0") return false;
  return sink.isTTY === true || env.NESTVISOR_PROGRESS === "1";
}
