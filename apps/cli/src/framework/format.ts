/** Number formatting for tables: thousands separators, a sensible number of decimals, signed changes. */

/** 1234567 → "1,234,567"; keeps `decimals` digits after the point. */
export function formatNumber(value: number, decimals = 0): string {
  if (!Number.isFinite(value)) return String(value);
  return value.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

/** Cycles (or counts) per iteration: no decimals from 100 up, one below, two below 10. */
export function formatAmount(value: number): string {
  const magnitude = Math.abs(value);
  if (magnitude === 0 || magnitude >= 100 || Number.isInteger(value)) return formatNumber(value, 0);
  return formatNumber(value, magnitude >= 10 ? 1 : 2);
}

/** The relative change from `base` to `value` as "+12.3%", "-4.0%" or "0.0%"; "n/a" without a base. */
export function formatChange(base: number, value: number): string {
  if (base === 0) return value === 0 ? "0.0%" : "n/a";
  const change = ((value - base) / base) * 100;
  const rounded = Math.round(change * 10) / 10;
  if (rounded === 0) return "0.0%";
  return `${rounded > 0 ? "+" : ""}${rounded.toFixed(1)}%`;
}

/** A ratio as "6.75×". */
export function formatRatio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : "n/a";
}

/** A share of a total as "12.3%". */
export function formatShare(part: number, total: number): string {
  return total === 0 ? "0.0%" : `${((part / total) * 100).toFixed(1)}%`;
}

/** `0x` and lower-case hex digits, padded to `digits`. */
export function hex(value: number | bigint, digits = 0): string {
  const text = (typeof value === "bigint" ? value : BigInt(Math.trunc(value))).toString(16);
  return `0x${text.padStart(digits, "0")}`;
}
