import type { ProgressSink } from "./progress";

/**
 * A progress bar for work that runs beside the main thread (sweep cells in worker threads), so a
 * timer can redraw it: done/total, cells per second and the time left. On a terminal it is one line
 * redrawn in place (`\r`) and erased at the end; elsewhere (a CI log, a file) it is a plain line
 * every `intervalMs`.
 */
export interface ProgressBarOptions {
  /** Draw in place (a terminal) or write lines. */
  readonly tty: boolean;
  /** Milliseconds between lines when not on a terminal. */
  readonly intervalMs: number;
  /** What is counted ("cells"). */
  readonly unit: string;
  readonly now?: () => number;
  /** Redraw on a timer (off in tests that drive `now`). */
  readonly timer?: boolean;
}

const BAR_WIDTH = 24;
const TTY_REDRAW_MS = 100;

/** "7 s", "2 min 05 s", "1 h 02 min". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

export interface ProgressState {
  readonly done: number;
  readonly total: number;
  /** Of `done`, how many were finished before this run (resumed): they do not count for the rate. */
  readonly skipped: number;
  readonly elapsedMs: number;
}

/** The rate and time left of `state`: the rate counts this run's work only. */
export function progressFigures(state: ProgressState): { rate: number; etaSeconds: number } {
  const worked = state.done - state.skipped;
  const seconds = state.elapsedMs / 1000;
  const rate = seconds > 0 ? worked / seconds : 0;
  const left = state.total - state.done;
  return { rate, etaSeconds: left === 0 ? 0 : rate > 0 ? left / rate : Number.POSITIVE_INFINITY };
}

/** The text of one progress line, with a bar when `bar` is set. */
export function progressText(label: string, unit: string, state: ProgressState, bar: boolean): string {
  const { rate, etaSeconds } = progressFigures(state);
  const share = state.total === 0 ? 1 : state.done / state.total;
  const percent = `${Math.floor(share * 100)}%`;
  const rateText = `${rate >= 100 ? rate.toFixed(0) : rate.toFixed(1)} ${unit}/s`;
  const eta =
    state.done === state.total
      ? `done in ${formatDuration(state.elapsedMs / 1000)}`
      : `ETA ${Number.isFinite(etaSeconds) ? formatDuration(etaSeconds) : "…"}`;
  const counts = `${state.done}/${state.total} ${unit}`;
  if (!bar) return `${label}: ${counts} (${percent}) · ${rateText} · ${eta}`;
  const filled = Math.round(share * BAR_WIDTH);
  return `${label} [${"█".repeat(filled)}${"░".repeat(BAR_WIDTH - filled)}] ${counts} ${percent} · ${rateText} · ${eta}`;
}

export class ProgressBar {
  readonly #sink: ProgressSink;
  readonly #label: string;
  readonly #options: ProgressBarOptions;
  readonly #now: () => number;
  #start = 0;
  #total = 0;
  #skipped = 0;
  #done = 0;
  #lastDraw = Number.NEGATIVE_INFINITY;
  #drawn = false;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(sink: ProgressSink, label: string, options: ProgressBarOptions) {
    this.#sink = sink;
    this.#label = label;
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * Starts counting towards `total`, `skipped` of which are already done. On a terminal the bar shows
   * at once; in a log the first line comes after one interval, or at once with `announce`.
   */
  start(total: number, skipped: number, announce = false): void {
    this.#start = this.#now();
    this.#total = total;
    this.#skipped = skipped;
    this.#done = skipped;
    if (this.#options.tty || announce) this.#draw(true);
    else this.#lastDraw = this.#start;
    if (this.#options.timer !== false) {
      this.#timer = setInterval(() => this.#draw(false), this.#options.tty ? 1000 : this.#options.intervalMs);
      this.#timer.unref();
    }
  }

  /** One more unit is done. */
  advance(n = 1): void {
    this.#done += n;
    this.#draw(false);
  }

  state(): ProgressState {
    return {
      done: this.#done,
      total: this.#total,
      skipped: this.#skipped,
      elapsedMs: this.#now() - this.#start,
    };
  }

  /** Stops the timer and, on a terminal, erases the line (the caller prints a summary). */
  finish(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#options.tty && this.#drawn) this.#sink.write("\r\u001b[2K");
    this.#drawn = false;
  }

  #draw(force: boolean): void {
    const now = this.#now();
    const interval = this.#options.tty ? TTY_REDRAW_MS : this.#options.intervalMs;
    if (!force && now - this.#lastDraw < interval) return;
    this.#lastDraw = now;
    this.#write();
  }

  #write(): void {
    const text = progressText(this.#label, this.#options.unit, this.state(), this.#options.tty);
    if (this.#options.tty) this.#sink.write(`\r\u001b[2K${text.slice(0, 99)}`);
    else this.#sink.write(`${text}\n`);
    this.#drawn = true;
  }
}
