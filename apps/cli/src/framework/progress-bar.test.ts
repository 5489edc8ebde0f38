import { describe, expect, it } from "vitest";
import { formatDuration, ProgressBar, progressFigures, progressText } from "./progress-bar";

function sink(isTTY: boolean) {
  const writes: string[] = [];
  return { isTTY, writes, write: (text: string) => writes.push(text) };
}

describe("progress figures", () => {
  it("counts the rate over this run's work only and derives the time left", () => {
    expect(progressFigures({ done: 60, total: 100, skipped: 20, elapsedMs: 4000 })).toEqual({
      rate: 10,
      etaSeconds: 4,
    });
    expect(progressFigures({ done: 0, total: 10, skipped: 0, elapsedMs: 0 }).etaSeconds).toBe(
      Number.POSITIVE_INFINITY,
    );
    expect(progressFigures({ done: 10, total: 10, skipped: 0, elapsedMs: 1000 }).etaSeconds).toBe(0);
  });

  it("formats durations for people", () => {
    expect(formatDuration(7.4)).toBe("7 s");
    expect(formatDuration(125)).toBe("2 min 05 s");
    expect(formatDuration(3720)).toBe("1 h 02 min");
  });

  it("writes done/total, the share, cells per second and the ETA, with a bar on a terminal", () => {
    const state = { done: 120, total: 240, skipped: 0, elapsedMs: 4000 };
    expect(progressText("nestvisor sweep", "cells", state, false)).toBe(
      "nestvisor sweep: 120/240 cells (50%) · 30.0 cells/s · ETA 4 s",
    );
    expect(progressText("s", "cells", state, true)).toBe(
      `s [${"█".repeat(12)}${"░".repeat(12)}] 120/240 cells 50% · 30.0 cells/s · ETA 4 s`,
    );
    expect(progressText("s", "cells", { ...state, done: 240 }, false)).toContain("done in 4 s");
    expect(progressText("s", "cells", { ...state, done: 0 }, false)).toContain("ETA …");
  });
});

describe("ProgressBar", () => {
  it("in a log writes a line per interval, the first after one interval", () => {
    let now = 0;
    const out = sink(false);
    const bar = new ProgressBar(out, "sweep", {
      tty: false,
      intervalMs: 1000,
      unit: "cells",
      now: () => now,
      timer: false,
    });
    bar.start(10, 2);
    expect(out.writes).toEqual([]);
    now = 500;
    bar.advance();
    expect(out.writes).toEqual([]);
    now = 1000;
    bar.advance();
    expect(out.writes).toEqual(["sweep: 4/10 cells (40%) · 2.0 cells/s · ETA 3 s\n"]);
    now = 1500;
    bar.advance();
    expect(out.writes).toHaveLength(1);
    bar.finish();
    expect(out.writes).toHaveLength(1);
    const announced = sink(false);
    new ProgressBar(announced, "sweep", {
      tty: false,
      intervalMs: 1000,
      unit: "cells",
      now: () => 0,
      timer: false,
    }).start(5, 0, true);
    expect(announced.writes).toEqual(["sweep: 0/5 cells (0%) · 0.0 cells/s · ETA …\n"]);
  });

  it("on a terminal redraws one line in place and erases it at the end", () => {
    let now = 0;
    const out = sink(true);
    const bar = new ProgressBar(out, "sweep", {
      tty: true,
      intervalMs: 1000,
      unit: "cells",
      now: () => now,
      timer: false,
    });
    bar.start(4, 0);
    now = 200;
    bar.advance();
    expect(out.writes).toHaveLength(2);
    for (const w of out.writes) expect(w.startsWith("\r\u001b[2K")).toBe(true);
    expect(out.writes[1]).toContain("1/4 cells 25%");
    bar.finish();
    expect(out.writes.at(-1)).toBe("\r\u001b[2K");
  });
});
