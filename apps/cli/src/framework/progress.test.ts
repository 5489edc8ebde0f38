import { describe, expect, it } from "vitest";
import { Progress, progressEnabled } from "./progress";

function sink(isTTY: boolean) {
  const writes: string[] = [];
  return { isTTY, writes, write: (t: string) => writes.push(t) };
}

describe("Progress", () => {
  it("stays silent for the first second, then redraws one terminal line and erases it", () => {
    let now = 0;
    const s = sink(true);
    const p = new Progress(s, "nestvisor compare", { enabled: true, now: () => now });
    p.start(10);
    p.tick(1, "cpuid L1");
    expect(s.writes).toEqual([]);
    now = 1500;
    p.tick(2, "cpuid L2");
    expect(s.writes[0]).toContain("nestvisor compare: 2/10 cpuid L2 (1.5 s)");
    p.finish();
    expect(s.writes.at(-1)).toBe("\r\u001b[2K");
  });

  it("writes whole lines, at most twice a second, when not on a terminal", () => {
    let now = 2000;
    const s = sink(false);
    const p = new Progress(s, "x", { enabled: true, now: () => now, delayMs: 0 });
    p.start(3);
    p.tick(0, "a");
    now += 100;
    p.tick(1, "b");
    now += 600;
    p.tick(2, "c");
    expect(s.writes).toHaveLength(2);
    expect(s.writes.every((w) => w.endsWith("\n"))).toBe(true);
  });

  it("is enabled on a terminal or when forced", () => {
    expect(progressEnabled({ isTTY: true, write: () => 0 }, {})).toBe(true);
    expect(progressEnabled({ isTTY: false, write: () => 0 }, {})).toBe(false);
    expect(progressEnabled({ isTTY: false, write: () => 0 }, { NESTVISOR_PROGRESS: "1" })).toBe(true);
    expect(progressEnabled({ isTTY: true, write: () => 0 }, { NESTVISOR_PROGRESS: "0" })).toBe(false);
  });
});
