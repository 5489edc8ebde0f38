import { csvField } from "../framework/csv";
import { flagSettings } from "../model/flag-args";
import type { Merged } from "./merge";
import type { SweepRow } from "./sweep-row";

/**
 * What `sweep merge` writes: the rows as JSON lines (as read), or long-format CSV — one line per
 * figure. Written line by line: a merged sweep can be far more text than one string holds.
 */

export const CSV_HEADER = [
  "index",
  "workload",
  "level",
  "preset",
  "model",
  "profile",
  "flags",
  "metric",
  "value",
];

/** The CSV records of one row: its figures, or why it is not modelled. */
export function csvRecords(row: SweepRow): (string | number)[][] {
  const key = [
    row.index,
    row.workload,
    row.level,
    row.preset,
    row.model ?? "",
    row.profile,
    flagSettings(row.flags).join(";"),
  ];
  if (row.cyclesPerIteration === null) return [[...key, "notModelled", row.notModelled ?? ""]];
  return [
    [...key, "cyclesPerIteration", row.cyclesPerIteration],
    ...Object.entries(row.cyclesByLevel).map(([level, cycles]) => [...key, `cycles.${level}`, cycles]),
    ...Object.entries(row.counters).map(([name, count]) => [...key, `counter.${name}`, count]),
  ];
}

const csvLine = (record: readonly (string | number)[]): string => `${record.map(csvField).join(",")}\n`;

/** Passes the merged output to `write`, one line at a time. */
export function writeMerged(merged: Merged, csv: boolean, write: (text: string) => void): void {
  if (!csv) {
    for (const line of merged.lines) write(`${line}\n`);
    return;
  }
  write(csvLine(CSV_HEADER));
  for (const row of merged.rows) for (const record of csvRecords(row)) write(csvLine(record));
}
