import { COST_EVENT_NAMES, type CostEventName, isCostEventName } from "./cost-catalogs";
import { jsonDuplicateKeys } from "./json-duplicate-keys";
import { jsonErrorOffset } from "./json-error-offset";
import { didYouMeanSuffix } from "./name-suggestion";

/**
 * A cost profile (DESIGN.md §5): cycles per counted event, each number with the public source it
 * was read from or marked as an assumption. Profiles are data — JSON a user can write — and this
 * module is their validating loader. It never fills in a missing number: a profile that does not
 * price every event, or prices one without saying where the number comes from, is rejected.
 *
 * JSON shape:
 *
 *   { "name": "intel-server", "description": "…", "cpu": "…",
 *     "tscGHz": { "value": 2.5, "assumption": "…" },
 *     "notes": ["…"],                                  (optional)
 *     "events": { "VMREAD": { "cycles": 5, "assumption": "…" },
 *                 "VMCS_FULL_CONSISTENCY_CHECK": { "cycles": 400, "source": "…" }, … } }
 */

/** Where a number comes from: a public source, or an explicit assumption (never both, never neither). */
export type Provenance = { readonly source: string } | { readonly assumption: string };

/**
 * The price of one event: cycles per count. Fractional prices are accepted; totals are then sums
 * of doubles, whose last bit may depend on how counts were batched (the model counts a block of n
 * VMWRITEs as one count of n). With whole-cycle prices, as in every shipped profile, totals are exact.
 */
export type CostEntry =
  | { readonly cycles: number; readonly source: string }
  | { readonly cycles: number; readonly assumption: string };

/** The TSC rate used to print cycles as time; never used to derive a cost. */
export type TscRate =
  | { readonly value: number; readonly source: string }
  | { readonly value: number; readonly assumption: string };

export interface CostProfile {
  /** Selects the profile (`--profile <name>`): lower case, digits, '.', '_' or '-'. */
  readonly name: string;
  readonly description: string;
  /** The processor (or family) the numbers describe. */
  readonly cpu: string;
  /** TSC frequency in GHz, to print cycles as time. */
  readonly tscGHz: TscRate;
  /** Free-form remarks: calibration policy, known disagreements between sources. */
  readonly notes: readonly string[];
  /** A price for every event of the vmx, mmu and hypervisor catalogs. */
  readonly events: Readonly<Record<CostEventName, CostEntry>>;
}

/** One problem found in a profile: the JSON path of the field at fault and what is wrong. */
export interface CostProfileIssue {
  /** Path segments from the root, e.g. ["events", "VMREAD", "cycles"]; empty for the root. */
  readonly path: readonly string[];
  readonly message: string;
  /** 1-based line in the source text, when the profile was parsed from text and the field located. */
  readonly line?: number;
}

/** `events.VMREAD.cycles`; segments that are not identifiers in brackets (`events["a b"]`). */
export function formatProfilePath(path: readonly string[]): string {
  let out = "";
  for (const segment of path) {
    if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** "origin:line: path: message", leaving out what is unknown. */
export function formatProfileIssue(origin: string, issue: CostProfileIssue): string {
  const where = issue.line === undefined ? origin : `${origin}:${issue.line}`;
  const path = formatProfilePath(issue.path);
  return path === "" ? `${where}: ${issue.message}` : `${where}: ${path}: ${issue.message}`;
}

/** A rejected profile: every issue found, one per line in the message. */
export class CostProfileError extends Error {
  /** The file (or other origin) the profile came from. */
  readonly origin: string;
  readonly issues: readonly CostProfileIssue[];

  constructor(origin: string, issues: readonly CostProfileIssue[]) {
    super(issues.map((issue) => formatProfileIssue(origin, issue)).join("\n"));
    this.name = "CostProfileError";
    this.origin = origin;
    this.issues = Object.freeze([...issues]);
  }
}

const PROFILE_NAME = /^[a-z0-9][a-z0-9._-]*$/;
const TOP_LEVEL_FIELDS = ["$schema", "name", "description", "cpu", "tscGHz", "notes", "events"] as const;
const ENTRY_FIELDS = ["cycles", "source", "assumption"] as const;
const TSC_FIELDS = ["value", "source", "assumption"] as const;
/** How many missing event names one issue lists before summarising. */
const MISSING_LISTED = 12;
/**
 * The largest price of one event: a second of a 1 GHz clock. Shipped prices stay below 10,000; a
 * larger one is a typo (an exponent, extra digits), and sums of prices near 1e308 overflow.
 */
export const MAX_EVENT_CYCLES = 1e9;
/** The TSC rates a profile may give, in GHz (printing cycles as time divides by it). */
export const MIN_TSC_GHZ = 0.001;
export const MAX_TSC_GHZ = 1000;
/**
 * Issues that get a did-you-mean suggestion and a line number; past them issues are still counted
 * and listed, without either, so a file of a million wrong keys is rejected in linear time.
 */
const DETAILED_ISSUES = 100;

function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string")
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return `a value of type ${typeof value}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Collects issues while walking the JSON; `missing` issues are located at their parent's line. */
class IssueList {
  readonly issues: { path: readonly string[]; message: string; missing: boolean }[] = [];

  add(path: readonly string[], message: string, missing = false): void {
    this.issues.push({ path, message, missing });
  }
}

/** A did-you-mean suffix while issues are few (see `DETAILED_ISSUES`), else "". */
function suggestion(issues: IssueList, input: string, candidates: readonly string[]): string {
  return issues.issues.length < DETAILED_ISSUES ? didYouMeanSuffix(input, candidates) : "";
}

function checkUnknownFields(
  value: Record<string, unknown>,
  allowed: readonly string[],
  path: readonly string[],
  issues: IssueList,
): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      issues.add(
        [...path, key],
        `unknown field${suggestion(issues, key, allowed)}; expected ${allowed.join(", ")}`,
      );
    }
  }
}

function requireText(
  value: Record<string, unknown>,
  key: string,
  path: readonly string[],
  issues: IssueList,
): string | undefined {
  if (!(key in value)) {
    issues.add([...path, key], "missing (expected a non-empty string)", true);
    return undefined;
  }
  const text = value[key];
  if (typeof text !== "string" || text.trim() === "") {
    issues.add([...path, key], `expected a non-empty string, got ${describeValue(text)}`);
    return undefined;
  }
  return text;
}

/** Reads `source` xor `assumption` of an object; undefined (with an issue) when neither or both. */
function provenance(
  value: Record<string, unknown>,
  path: readonly string[],
  issues: IssueList,
): Provenance | undefined {
  const hasSource = "source" in value;
  const hasAssumption = "assumption" in value;
  if (hasSource && hasAssumption) {
    issues.add(path, 'has both "source" and "assumption"; keep the one that applies');
    return undefined;
  }
  if (!hasSource && !hasAssumption) {
    issues.add(
      path,
      'missing "source" or "assumption": every number must name where it comes from, or say it is assumed',
    );
    return undefined;
  }
  const key = hasSource ? "source" : "assumption";
  const text = requireText(value, key, path, issues);
  if (text === undefined) return undefined;
  return hasSource ? { source: text } : { assumption: text };
}

/** The range a number must fall in beyond its sign, and its unit for messages. */
interface NumberRange {
  readonly min: number;
  readonly max: number;
  readonly unit: string;
}

function nonNegativeNumber(
  value: Record<string, unknown>,
  key: string,
  path: readonly string[],
  issues: IssueList,
  positive: boolean,
  range: NumberRange,
): number | undefined {
  const expected = positive ? "a positive number" : "a non-negative number";
  if (!(key in value)) {
    issues.add([...path, key], `missing (expected ${expected})`, true);
    return undefined;
  }
  const n = value[key];
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0 || (positive && n === 0)) {
    issues.add([...path, key], `expected ${expected}, got ${describeValue(n)}`);
    return undefined;
  }
  if (n > range.max || n < range.min) {
    const bound = n > range.max ? `at most ${range.max}` : `at least ${range.min}`;
    issues.add([...path, key], `expected ${bound} ${range.unit}, got ${describeValue(n)}`);
    return undefined;
  }
  return n;
}

const CYCLES_RANGE: NumberRange = { min: 0, max: MAX_EVENT_CYCLES, unit: "cycles" };
const TSC_RANGE: NumberRange = { min: MIN_TSC_GHZ, max: MAX_TSC_GHZ, unit: "GHz" };

function parseEntry(value: unknown, path: readonly string[], issues: IssueList): CostEntry | undefined {
  if (!isRecord(value)) {
    issues.add(
      path,
      `expected an object { "cycles": n, "source" | "assumption": "…" }, got ${describeValue(value)}`,
    );
    return undefined;
  }
  checkUnknownFields(value, ENTRY_FIELDS, path, issues);
  const cycles = nonNegativeNumber(value, "cycles", path, issues, false, CYCLES_RANGE);
  const from = provenance(value, path, issues);
  if (cycles === undefined || from === undefined) return undefined;
  return Object.freeze(
    "source" in from ? { cycles, source: from.source } : { cycles, assumption: from.assumption },
  );
}

function parseTsc(value: unknown, path: readonly string[], issues: IssueList): TscRate | undefined {
  if (!isRecord(value)) {
    issues.add(
      path,
      `expected an object { "value": GHz, "source" | "assumption": "…" }, got ${describeValue(value)}`,
    );
    return undefined;
  }
  checkUnknownFields(value, TSC_FIELDS, path, issues);
  const ghz = nonNegativeNumber(value, "value", path, issues, true, TSC_RANGE);
  const from = provenance(value, path, issues);
  if (ghz === undefined || from === undefined) return undefined;
  return Object.freeze(
    "source" in from ? { value: ghz, source: from.source } : { value: ghz, assumption: from.assumption },
  );
}

function parseEvents(
  value: unknown,
  issues: IssueList,
): Readonly<Record<CostEventName, CostEntry>> | undefined {
  const path = ["events"];
  if (!isRecord(value)) {
    issues.add(path, `expected an object mapping event names to costs, got ${describeValue(value)}`);
    return undefined;
  }
  const out: Partial<Record<CostEventName, CostEntry>> = {};
  let complete = true;
  for (const [name, raw] of Object.entries(value)) {
    if (!isCostEventName(name)) {
      issues.add([...path, name], `unknown event${suggestion(issues, name, COST_EVENT_NAMES)}`);
      complete = false;
      continue;
    }
    const entry = parseEntry(raw, [...path, name], issues);
    if (entry === undefined) complete = false;
    else out[name] = entry;
  }
  const missing = COST_EVENT_NAMES.filter((name) => !(name in value));
  if (missing.length > 0) {
    const listed = missing.slice(0, MISSING_LISTED).join(", ");
    const more = missing.length > MISSING_LISTED ? ` and ${missing.length - MISSING_LISTED} more` : "";
    issues.add(
      path,
      `missing costs for ${missing.length} event${missing.length === 1 ? "" : "s"}: ${listed}${more} ` +
        "(a profile prices every event of the vmx, mmu and hypervisor catalogs)",
    );
    complete = false;
  }
  // Id order, whatever order the file used.
  if (!complete) return undefined;
  const ordered: Partial<Record<CostEventName, CostEntry>> = {};
  for (const name of COST_EVENT_NAMES) ordered[name] = out[name]!;
  return Object.freeze(ordered as Record<CostEventName, CostEntry>);
}

/** Options of `parseCostProfile`. */
export interface ParseCostProfileOptions {
  /** The JSON text the value was parsed from: lets issues carry a line number. */
  readonly text?: string;
}

/**
 * Validates a profile value (parsed JSON or a literal object) and returns it frozen, with its events
 * in id order. Throws a `CostProfileError` listing every issue, each naming `origin` (a file name),
 * the JSON path and the field: `profile.json: events.VMREAD.cycles: expected a non-negative number,
 * got -1`. Unknown fields and event names are rejected with a did-you-mean suggestion.
 */
export function parseCostProfile(
  json: unknown,
  origin: string,
  options: ParseCostProfileOptions = {},
): CostProfile {
  const issues = new IssueList();
  let profile: CostProfile | undefined;
  if (!isRecord(json)) {
    issues.add([], `expected a cost profile object, got ${describeValue(json)}`);
  } else {
    checkUnknownFields(json, TOP_LEVEL_FIELDS, [], issues);
    const name = requireText(json, "name", [], issues);
    if (name !== undefined && !PROFILE_NAME.test(name)) {
      issues.add(
        ["name"],
        `expected lower-case letters, digits, '.', '_' or '-', got ${describeValue(name)}`,
      );
    }
    const description = requireText(json, "description", [], issues);
    const cpu = requireText(json, "cpu", [], issues);
    let tscGHz: TscRate | undefined;
    if ("tscGHz" in json) tscGHz = parseTsc(json.tscGHz, ["tscGHz"], issues);
    else issues.add(["tscGHz"], 'missing (expected { "value": GHz, "source" | "assumption": "…" })', true);
    let notes: readonly string[] = [];
    if ("notes" in json) {
      const raw = json.notes;
      if (!Array.isArray(raw))
        issues.add(["notes"], `expected an array of strings, got ${describeValue(raw)}`);
      else {
        raw.forEach((note, i) => {
          if (typeof note !== "string")
            issues.add(["notes", String(i)], `expected a string, got ${describeValue(note)}`);
        });
        notes = Object.freeze(raw.filter((note): note is string => typeof note === "string"));
      }
    }
    let events: Readonly<Record<CostEventName, CostEntry>> | undefined;
    if ("events" in json) events = parseEvents(json.events, issues);
    else issues.add(["events"], "missing (expected an object mapping event names to costs)", true);
    if (
      issues.issues.length === 0 &&
      name !== undefined &&
      description !== undefined &&
      cpu !== undefined &&
      tscGHz !== undefined &&
      events !== undefined
    ) {
      profile = Object.freeze({ name, description, cpu, tscGHz, notes, events });
    }
  }
  if (profile === undefined || issues.issues.length > 0) {
    const text = options.text;
    throw new CostProfileError(
      origin,
      issues.issues.map(({ path, message, missing }, i) => {
        // Each lookup scans the text: only the first issues are located.
        const line =
          text === undefined || i >= DETAILED_ISSUES
            ? undefined
            : lineOfPath(text, missing ? path.slice(0, -1) : path);
        return line === undefined ? { path, message } : { path, message, line };
      }),
    );
  }
  return profile;
}

/**
 * Parses JSON text and validates it (`parseCostProfile`); issues carry the line of the field at
 * fault, and a JSON syntax error names its line and column. A key given twice in one object (at
 * the top level, in `events`, in one event's entry…) is refused, naming the key's path and both
 * places: `JSON.parse` would keep the last value without a word, so the file would not be read as
 * written. (`parseCostProfile` gets a value, in which duplicates are already gone.)
 */
export function parseCostProfileText(text: string, origin: string): CostProfile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const offset = jsonErrorOffset(text);
    if (offset < 0) throw new CostProfileError(origin, [{ path: [], message: `invalid JSON: ${message}` }]);
    const { line, column } = lineAndColumn(text, offset);
    throw new CostProfileError(origin, [
      { path: [], message: `invalid JSON at column ${column}: ${message}`, line },
    ]);
  }
  const duplicates = jsonDuplicateKeys(text, DETAILED_ISSUES);
  if (duplicates.count > 0) throw new CostProfileError(origin, duplicateKeyIssues(duplicates));
  return parseCostProfile(json, origin, { text });
}

/** One issue per duplicate key described, and one counting those past `DETAILED_ISSUES`. */
function duplicateKeyIssues(duplicates: ReturnType<typeof jsonDuplicateKeys>): CostProfileIssue[] {
  const issues: CostProfileIssue[] = duplicates.found.map((d) => ({
    path: d.path,
    message:
      `duplicate key ${describeValue(d.key)} at line ${d.line}, column ${d.column} ` +
      `(first at line ${d.firstLine}, column ${d.firstColumn}): a key may appear once per object`,
    line: d.line,
  }));
  const unlisted = duplicates.count - duplicates.found.length;
  if (unlisted > 0) {
    issues.push({
      path: [],
      message: `${unlisted} more duplicate key${unlisted === 1 ? "" : "s"}, not listed`,
    });
  }
  return issues;
}

/** 1-based line and column of a character offset. */
function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: end - lineStart + 1 };
}

/**
 * The line of the key at `path`, found by looking for each key (`"name":`) after the previous one.
 * JSON nests forward, so for well-formed text with unique keys per object this lands on the field;
 * it returns the deepest key found, or undefined when the first is absent.
 */
function lineOfPath(text: string, path: readonly string[]): number | undefined {
  let at = -1;
  let from = 0;
  for (const segment of path) {
    const pattern = new RegExp(`${escapeRegExp(JSON.stringify(segment))}\\s*:`, "g");
    pattern.lastIndex = from;
    const match = pattern.exec(text);
    if (match === null) break;
    at = match.index;
    from = match.index + match[0].length;
  }
  if (at < 0) return path.length === 0 ? 1 : undefined;
  return lineAndColumn(text, at).line;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The provenance of an entry as a tagged pair, for reports. */
export function costProvenance(entry: CostEntry | TscRate): { kind: "source" | "assumption"; text: string } {
  return "source" in entry
    ? { kind: "source", text: entry.source }
    : { kind: "assumption", text: entry.assumption };
}
