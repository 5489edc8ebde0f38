/**
 * Workload files: YAML or JSON text (JSON is read by the same YAML 1.2 parser, so both get line and
 * column positions) holding the document described in workload-spec.ts, checked against the field
 * tables by a hand-written validator.
 *
 * Errors: every problem found is reported, not only the first. Problems of shape (syntax, unknown
 * keys, missing keys, wrong types, values out of range) are collected in one pass over the file;
 * when there are none, the document is compiled and the compiler's problems (unmapped or
 * misaligned addresses, CR values that clash with the paging mode, unknown address spaces…) are
 * mapped back to the lines that caused them (literal CR3 values among them, checked against the
 * machine's MAXPHYADDR and the guest's memory: workload-cr3-check.ts). Each time
 * `WorkloadFileError` is thrown with all the problems of that stage, sorted by position, each
 * formatted as
 *
 *     my.yaml:12:5: steps[3].cpuid.leaf: expected an integer in [0, 0xffffffff], got "abc"
 *
 * Nothing half-built is returned.
 *
 * Conveniences for people writing files by hand:
 * - integers as numbers, or as strings in the forms a number cannot take (`"0x1f"` in JSON,
 *   `0x8000_0000_0000_0000`, `0b101`, `1_000_000`); a plain decimal in quotes (`count: "2"`) is
 *   refused like any string where a number is required (see `INTEGER_TEXT_PATTERN`);
 * - a scalar for an operation's main operand (`cpuid: 1`, `read: 0x1000`, `rdmsr: IA32_TSC_ADJUST`,
 *   `movToCr3: user1` for an address space, `iteration: tick`), and a bare name for an operation
 *   without required operands (`- hlt`, `- movFromCr3`);
 * - `memory: 16MiB`; paging and page-size names in any case;
 * - unknown keys and operations come with a did-you-mean.
 *
 * Not supported: YAML anchors and aliases (an alias where a value is expected is reported as such),
 * tags beyond YAML's core schema (reported, with the parser's other warnings), and more than one
 * document per file. Text holding U+FFFD is reported as not UTF-8: that is what a decoder puts where
 * a file's bytes were not UTF-8. Values and keys are cut to 64 characters in messages.
 */
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import { didYouMeanSuffix } from "./name-suggestion";
import { compileWorkload, WorkloadBuildError, type WorkloadProblem } from "./workload-compiler";
import type { WorkloadProgram } from "./workload-ops";
import {
  checkLeaf,
  clipText,
  expectation,
  type FieldKind,
  type FieldTable,
  formatGot,
  INTEGER_TEXT_PATTERN,
  isQuotedNumber,
  isStepName,
  listKeys,
  MAX_LOOP_DEPTH,
  parseByteSize,
  parseIntegerText,
  parseSizeText,
  pathKey,
  QUOTED_NUMBER_PATTERN,
  quoteText,
  SIZE_TEXT_PATTERN,
  STEP_NAMES,
  STEP_TABLE,
  type StepSpec,
  WORKLOAD_FIELDS,
  type WorkloadSpec,
} from "./workload-spec";

/** One problem in a workload file, with its 1-based position. */
export interface WorkloadFileProblem {
  readonly line: number;
  readonly column: number;
  /** Path of the field at fault (`steps[3].cpuid.leaf`), or "" for the file as a whole. */
  readonly path: string;
  readonly message: string;
}

/** A bad workload file: all its problems, each naming the file, line:column, path and field. */
export class WorkloadFileError extends Error {
  readonly file: string;
  readonly problems: readonly WorkloadFileProblem[];
  constructor(file: string, problems: readonly WorkloadFileProblem[]) {
    super(problems.map((p) => formatFileProblem(file, p)).join("\n"));
    this.name = "WorkloadFileError";
    this.file = file;
    this.problems = problems;
  }
}

/** `file:line:column: path: message`. */
export function formatFileProblem(file: string, problem: WorkloadFileProblem): string {
  const where = `${file}:${problem.line}:${problem.column}`;
  return problem.path === ""
    ? `${where}: ${problem.message}`
    : `${where}: ${problem.path}: ${problem.message}`;
}

interface Located {
  readonly offset: number;
  readonly path: string;
  readonly message: string;
}

/** One pass over the YAML tree: converts it to a document and records problems and node positions. */
class Reader {
  readonly problems: Located[] = [];
  /** Start offset of the node at each path (values; keys under `path#key`). */
  readonly offsets = new Map<string, number>();
  /** Loops enclosing the step list being read. */
  loopDepth = 0;
  readonly lines: LineCounter;

  constructor(lines: LineCounter) {
    this.lines = lines;
  }

  problem(node: Node | null | undefined, path: string, message: string): undefined {
    this.problems.push({ offset: node?.range?.[0] ?? 0, path, message });
    return undefined;
  }

  mark(path: string, node: Node | null | undefined): void {
    const offset = node?.range?.[0];
    if (offset !== undefined && !this.offsets.has(path)) this.offsets.set(path, offset);
  }

  /** How the user wrote a scalar, for messages. */
  got(node: Node): string {
    if (isScalar(node)) {
      if (typeof node.value === "string") return quoteText(node.value);
      if (node.value === null && (node.source ?? "") === "") return "nothing";
      if (typeof node.value === "number" || typeof node.value === "bigint")
        return node.source === undefined ? formatGot(node.value) : clipText(node.source);
      return clipText(node.source ?? String(node.value));
    }
    if (isMap(node)) return "a mapping";
    if (isSeq(node)) return "a list";
    return "an alias";
  }

  /**
   * An integer scalar as a BigInt, or undefined. From a number: YAML and JSON read `1e3` as the
   * number 1000, an integer, which is accepted like `1000`; `1.5` is not an integer, and a number
   * beyond 2^53 with a fraction or an exponent may not be exact, so both are refused (integers
   * without either are read exactly, as BigInts). From a string only in the forms of
   * `INTEGER_TEXT_PATTERN` (`"0x10"`, `0b101`, `1_000`): a plain decimal in quotes is refused.
   */
  integer(node: Node): bigint | undefined {
    if (!isScalar(node)) return undefined;
    const value = node.value;
    if (typeof value === "bigint") return value;
    if (typeof value === "number") return Number.isSafeInteger(value) ? BigInt(value) : undefined;
    if (typeof value === "string") return parseIntegerText(value);
    return undefined;
  }

  /** " (a number in quotes: …)" when `node` is a string holding a plain decimal integer, else "". */
  quotedNumberHint(node: Node): string {
    if (!isScalar(node) || typeof node.value !== "string" || !isQuotedNumber(node.value)) return "";
    return " (a number in quotes: write it without quotes)";
  }

  /** Converts a leaf node to the value the document holds, or records a problem. */
  leaf(node: Node, type: FieldKind, path: string): unknown {
    this.mark(path, node);
    const wrong = () =>
      this.problem(
        node,
        path,
        `expected ${expectation(type)}, got ${this.got(node)}${this.quotedNumberHint(node)}`,
      );
    let value: unknown;
    switch (type.kind) {
      case "int":
      case "choice": {
        const big = this.integer(node);
        if (big === undefined) return wrong();
        if (big > BigInt(Number.MAX_SAFE_INTEGER) || big < -BigInt(Number.MAX_SAFE_INTEGER)) return wrong();
        value = Number(big);
        break;
      }
      case "u64": {
        const big = this.integer(node);
        if (big === undefined) return wrong();
        value = big <= BigInt(Number.MAX_SAFE_INTEGER) && big >= 0n ? Number(big) : big;
        break;
      }
      case "enum": {
        if (!isScalar(node) || typeof node.value !== "string") return wrong();
        const text = node.value;
        const match = type.values.find((v) => v.toLowerCase() === text.toLowerCase());
        if (match === undefined) {
          return this.problem(
            node,
            path,
            `expected ${expectation(type)}, got ${this.got(node)}${didYouMeanSuffix(text, type.values)}`,
          );
        }
        value = match;
        break;
      }
      case "bool":
      case "text":
      case "name":
      case "label":
        if (!isScalar(node)) return wrong();
        value = node.value;
        break;
      case "bytes": {
        if (!isScalar(node)) return wrong();
        const raw = node.value;
        const bytes =
          typeof raw === "bigint"
            ? Number(raw)
            : typeof raw === "number"
              ? parseByteSize(raw)
              : typeof raw === "string"
                ? parseSizeText(raw)
                : undefined;
        if (bytes === undefined) return wrong();
        value = bytes;
        break;
      }
      case "msr":
      case "space": {
        if (!isScalar(node)) return wrong();
        const raw = node.value;
        if (typeof raw === "string") {
          // An MSR given as "16" is neither integer text nor a name; a space may be named "16".
          if (type.kind === "msr" && isQuotedNumber(raw)) return wrong();
          const big = type.kind === "msr" ? parseIntegerText(raw) : undefined;
          value = big === undefined ? raw : Number(big > 0xffffffffn ? 0x100000000n : big);
        } else {
          const big = this.integer(node);
          if (big === undefined || big > 0xffffffffn) return wrong();
          value = Number(big);
        }
        break;
      }
      default:
        return wrong();
    }
    const problem = checkLeaf(type, value);
    if (problem !== undefined) {
      // Keep the user's spelling of the value in the message.
      return this.problem(node, path, `expected ${expectation(type)}, got ${this.got(node)}`);
    }
    return value;
  }

  /** Converts any field value by kind. */
  value(node: Node, type: FieldKind, path: string): unknown {
    switch (type.kind) {
      case "object":
        return this.object(node, type.fields, path);
      case "list": {
        this.mark(path, node);
        if (!isSeq(node))
          return this.problem(node, path, `expected ${expectation(type)}, got ${this.got(node)}`);
        const fields = type.fields;
        return node.items.map((item, i) => this.object(item as Node, fields, `${path}[${i}]`));
      }
      case "steps":
        return this.steps(node, path);
      default:
        return this.leaf(node, type, path);
    }
  }

  /** Converts a mapping against a field table: unknown keys, missing keys, each value. */
  object(node: Node, fields: FieldTable, path: string): Record<string, unknown> | undefined {
    this.mark(path, node);
    if (!isMap(node)) return this.problem(node, path, `expected a mapping, got ${this.got(node)}`);
    const out: Record<string, unknown> = {};
    // Keys are checked unique here, not by the parser, whose check takes time quadratic in the keys.
    const seen = new Map<string, Node>();
    for (const pair of node.items) {
      const keyNode = pair.key as Node;
      const key = isScalar(keyNode) ? String(keyNode.value) : undefined;
      const shownKey = key === undefined ? "" : clipText(key);
      const pathed = key === undefined ? "" : pathKey(key);
      const itemPath = key === undefined ? path : path === "" ? pathed : `${path}.${pathed}`;
      if (key === undefined) {
        this.problem(keyNode, path, "keys must be plain names");
        continue;
      }
      const first = seen.get(key);
      if (first !== undefined) {
        const line = this.lines.linePos(first.range?.[0] ?? 0).line;
        this.problem(keyNode, itemPath, `duplicate key ${quoteText(key)} (first given on line ${line})`);
        continue;
      }
      this.mark(`${itemPath}#key`, keyNode);
      seen.set(key, keyNode);
      // Own keys only: `__proto__`, `toString` and the like are unknown keys, not Object.prototype's.
      const info = Object.hasOwn(fields, key) ? fields[key] : undefined;
      if (info === undefined) {
        this.problem(
          keyNode,
          itemPath,
          `unknown key ${quoteText(key)}${didYouMeanSuffix(shownKey, Object.keys(fields))}`,
        );
        continue;
      }
      const valueNode = pair.value as Node | null;
      if (valueNode === null || (isScalar(valueNode) && valueNode.value === null)) {
        this.problem(valueNode ?? keyNode, itemPath, `expected ${expectation(info.type)}, got nothing`);
        continue;
      }
      const value = this.value(valueNode, info.type, itemPath);
      if (value !== undefined) out[key] = value;
    }
    for (const [key, info] of Object.entries(fields)) {
      if (info.required === true && !seen.has(key)) this.problem(node, path, `missing required key "${key}"`);
    }
    return out;
  }

  steps(node: Node, path: string): StepSpec[] | undefined {
    this.mark(path, node);
    // The compiler's limit, checked here too so that reading stops before the stack does.
    if (this.loopDepth > MAX_LOOP_DEPTH)
      return this.problem(node, path.replace(/\.steps$/, ""), `loops nest more than ${MAX_LOOP_DEPTH} deep`);
    if (!isSeq(node)) return this.problem(node, path, `expected a list of steps, got ${this.got(node)}`);
    const out: StepSpec[] = [];
    this.loopDepth++;
    node.items.forEach((item, i) => {
      const step = this.step(item as Node, `${path}[${i}]`);
      if (step !== undefined) out.push(step);
    });
    this.loopDepth--;
    return out;
  }

  step(node: Node, path: string): StepSpec | undefined {
    this.mark(path, node);
    if (isScalar(node) && typeof node.value === "string") {
      const name = node.value;
      if (!isStepName(name)) {
        return this.problem(
          node,
          path,
          `unknown operation ${quoteText(name)}${didYouMeanSuffix(clipText(name), STEP_NAMES)}`,
        );
      }
      this.mark(`${path}.${name}`, node);
      const required = Object.entries(STEP_TABLE[name].fields).filter(([, info]) => info.required === true);
      if (required.length > 0) {
        return this.problem(
          node,
          `${path}.${name}`,
          `needs operands: ${required.map(([key]) => key).join(", ")}`,
        );
      }
      return { [name]: {} } as StepSpec;
    }
    if (!isMap(node)) {
      return this.problem(
        node,
        path,
        `expected a step (an operation name or a mapping with one), got ${this.got(node)}`,
      );
    }
    const keys = node.items.map((pair) => (isScalar(pair.key) ? clipText(String(pair.key.value)) : "?"));
    if (keys.length !== 1) {
      const first = keys[0];
      const hint =
        first !== undefined &&
        isStepName(first) &&
        keys.slice(1).every((k) => Object.hasOwn(STEP_TABLE[first].fields, k))
          ? ` (indent the operands of "${first}" under it)`
          : "";
      return this.problem(
        node,
        path,
        `a step has exactly one operation key, got ${keys.length === 0 ? "none" : listKeys(keys)}${hint}`,
      );
    }
    const pair = node.items[0]!;
    const name = keys[0]!;
    const keyNode = pair.key as Node;
    if (!isStepName(name)) {
      const written = isScalar(keyNode) ? String(keyNode.value) : name;
      return this.problem(
        keyNode,
        `${path}.${name}`,
        `unknown operation ${quoteText(written)}${didYouMeanSuffix(name, STEP_NAMES)}`,
      );
    }
    const info = STEP_TABLE[name];
    const stepPath = `${path}.${name}`;
    const valueNode = pair.value as Node | null;
    if (valueNode === null || (isScalar(valueNode) && valueNode.value === null)) {
      this.mark(stepPath, valueNode ?? keyNode);
      const required = Object.entries(info.fields).filter(([, field]) => field.required === true);
      if (required.length > 0) {
        return this.problem(
          valueNode ?? keyNode,
          stepPath,
          `needs operands: ${required.map(([key]) => key).join(", ")}`,
        );
      }
      return { [name]: {} } as StepSpec;
    }
    if (isMap(valueNode)) {
      const operands = this.object(valueNode, info.fields, stepPath);
      return operands === undefined ? undefined : ({ [name]: operands } as StepSpec);
    }
    if (isScalar(valueNode)) {
      this.mark(stepPath, valueNode);
      let field: string | undefined = "shorthand" in info ? info.shorthand : undefined;
      if (name === "movToCr3") {
        // A number (or integer text) is a literal CR3; a name is a space. "5" is refused as a value.
        const quoted = typeof valueNode.value === "string" && isQuotedNumber(valueNode.value);
        field = this.integer(valueNode) === undefined && !quoted ? "space" : "value";
      }
      if (field !== undefined) {
        const fieldInfo = info.fields[field as keyof typeof info.fields] as { type: FieldKind } | undefined;
        if (fieldInfo !== undefined) {
          const value = this.leaf(valueNode, fieldInfo.type, `${stepPath}.${field}`);
          return value === undefined ? undefined : ({ [name]: { [field]: value } } as StepSpec);
        }
      }
    }
    const fieldNames = Object.keys(info.fields);
    return this.problem(
      valueNode,
      stepPath,
      `expected a mapping of operands (${fieldNames.join(", ")}), got ${this.got(valueNode)}`,
    );
  }

  /** The offset for a compiler problem's path: the node at that path, or at the nearest enclosing path. */
  offsetOf(path: string): number {
    let current = path;
    for (;;) {
      const offset = this.offsets.get(current);
      if (offset !== undefined) return offset;
      if (current === "") return 0;
      const cut = Math.max(current.lastIndexOf("."), current.lastIndexOf("["));
      current = cut <= 0 ? "" : current.slice(0, cut);
    }
  }
}

function firstLine(message: string): string {
  const line = message.split("\n")[0] ?? message;
  return line.replace(/ at line \d+, column \d+:?$/, "");
}

const TOO_DEEP = "the document nests too deeply to read";

/** What the YAML parser says, in the loader's words where its own would puzzle a user. */
function yamlMessage(message: string): string {
  // The parser recurses per level of nesting and reports running out of stack as an error.
  if (message.includes("Maximum call stack size exceeded")) return TOO_DEEP;
  return `YAML: ${firstLine(message)}`;
}

/** 1-based line and column of `offset` in `text`. */
function positionIn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const lineStart = before.lastIndexOf("\n") + 1;
  return { line: before.split("\n").length, column: offset - lineStart + 1 };
}

/**
 * Parses and checks workload text (YAML or JSON) into a document, without compiling it. Throws
 * `WorkloadFileError` with every problem of syntax and shape.
 */
export function parseWorkloadText(text: string, file = "<workload>"): WorkloadSpec {
  return read(text, file).spec;
}

function read(text: string, file: string): { spec: WorkloadSpec; reader: Reader; lines: LineCounter } {
  // A file that is not UTF-8 reaches here with U+FFFD where its bad bytes were (TextDecoder's
  // replacement), which would otherwise slip into names and descriptions unnoticed.
  const replaced = text.indexOf("\uFFFD");
  if (replaced >= 0) {
    const { line, column } = positionIn(text, replaced);
    throw new WorkloadFileError(file, [
      {
        line,
        column,
        path: "",
        message: "not UTF-8 text: a byte sequence here is not UTF-8 (read as U+FFFD); save the file as UTF-8",
      },
    ]);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lines,
    intAsBigInt: true,
    uniqueKeys: false,
    prettyErrors: false,
  });
  const position = (offset: number) => lines.linePos(offset);
  const toProblem = (located: Located): WorkloadFileProblem => {
    const { line, col } = position(located.offset);
    return { line, column: col, path: located.path, message: located.message };
  };
  // Warnings too: an unknown tag or a bad indentation is something the file says that would be lost.
  const issues = [...doc.errors, ...doc.warnings];
  if (issues.length > 0) {
    const located = issues.map((error) => ({
      offset: error.pos[0],
      path: "",
      message: yamlMessage(error.message),
    }));
    // The parser may repeat the nesting error as it unwinds: report the first only.
    const firstTooDeep = located.findIndex((problem) => problem.message === TOO_DEEP);
    const unique = located.filter((problem, i) => problem.message !== TOO_DEEP || i === firstTooDeep);
    throw new WorkloadFileError(file, unique.sort((a, b) => a.offset - b.offset).map(toProblem));
  }
  const reader = new Reader(lines);
  const root = doc.contents as Node | null;
  if (root === null)
    throw new WorkloadFileError(file, [{ line: 1, column: 1, path: "", message: "the file is empty" }]);
  const spec = reader.object(root, WORKLOAD_FIELDS, "");
  if (reader.problems.length > 0 || spec === undefined) {
    const sorted = [...reader.problems].sort((a, b) => a.offset - b.offset);
    throw new WorkloadFileError(file, sorted.map(toProblem));
  }
  delete spec.$schema;
  return { spec: spec as unknown as WorkloadSpec, reader, lines };
}

/**
 * Loads a workload from YAML or JSON text and compiles it. `file` names the source in messages.
 * Throws `WorkloadFileError` listing every problem (see the module comment).
 */
export function loadWorkload(text: string, file = "<workload>"): WorkloadProgram {
  const { spec, reader, lines } = read(text, file);
  let program: WorkloadProgram;
  try {
    program = compileWorkload(spec);
  } catch (error) {
    if (!(error instanceof WorkloadBuildError)) throw error;
    throw new WorkloadFileError(file, locate(error.problems, reader, lines));
  }
  return program;
}

function locate(
  problems: readonly WorkloadProblem[],
  reader: Reader,
  lines: LineCounter,
): WorkloadFileProblem[] {
  return problems
    .map((problem) => {
      const offset = reader.offsetOf(problem.path);
      const { line, col } = lines.linePos(offset);
      return { offset, problem: { line, column: col, path: problem.path, message: problem.message } };
    })
    .sort((a, b) => a.offset - b.offset)
    .map((entry) => entry.problem);
}

// ---------------------------------------------------------------------------------------------
// JSON Schema
// ---------------------------------------------------------------------------------------------

// The loader's own patterns (workload-spec.ts), so that schema and loader accept the same strings.
const INTEGER_TEXT = INTEGER_TEXT_PATTERN.source;
const SIZE_TEXT = SIZE_TEXT_PATTERN.source;
const NAME_TEXT = "^[A-Za-z0-9_.+-]{1,64}$";

type Schema = { readonly [key: string]: unknown };

function kindSchema(type: FieldKind): Schema {
  const integerText = { type: "string", pattern: INTEGER_TEXT };
  switch (type.kind) {
    case "int":
      return { anyOf: [{ type: "integer", minimum: type.min, maximum: type.max }, integerText] };
    case "u64":
      return { anyOf: [{ type: "integer", minimum: 0 }, integerText] };
    case "choice":
      // Strings in integer form are integers here too (the loader checks the value is a choice).
      return { anyOf: [{ enum: [...type.values] }, integerText] };
    case "enum":
      return { type: "string", enum: [...type.values] };
    case "bool":
      return { type: "boolean" };
    case "text":
      return { type: "string" };
    case "name":
      return { type: "string", pattern: NAME_TEXT };
    case "label":
      return { type: "string", minLength: 1, maxLength: 64 };
    case "bytes":
      return {
        anyOf: [
          { type: "integer", minimum: type.min, maximum: type.max, multipleOf: 4096 },
          { type: "string", pattern: INTEGER_TEXT },
          { type: "string", pattern: SIZE_TEXT },
        ],
      };
    case "msr":
      return {
        anyOf: [
          { type: "integer", minimum: 0, maximum: 0xffffffff },
          // A name or integer text; "16" is a number in quotes, refused.
          { type: "string", minLength: 1, not: { pattern: QUOTED_NUMBER_PATTERN.source } },
        ],
      };
    case "space":
      return {
        anyOf: [
          { type: "integer", minimum: 0 },
          { type: "string", pattern: NAME_TEXT },
        ],
      };
    case "object":
      return objectSchema(type.fields);
    case "list":
      return { type: "array", items: objectSchema(type.fields) };
    case "steps":
      return { type: "array", items: { $ref: "#/$defs/step" } };
  }
}

function objectSchema(fields: FieldTable): Schema {
  const properties: Record<string, Schema> = {};
  for (const [key, info] of Object.entries(fields))
    properties[key] = { description: info.description, ...kindSchema(info.type) };
  const required = Object.entries(fields)
    .filter(([, info]) => info.required === true)
    .map(([key]) => key);
  return {
    type: "object",
    additionalProperties: false,
    properties,
    ...(required.length > 0 ? { required } : {}),
  };
}

function stepSchema(): Schema {
  const bare: string[] = [];
  const variants: Schema[] = [];
  for (const name of STEP_NAMES) {
    const info: { description: string; fields: FieldTable; shorthand?: string } = STEP_TABLE[name];
    const noneRequired = Object.values(info.fields).every((field) => field.required !== true);
    if (noneRequired) bare.push(name);
    const forms: Schema[] = [objectSchema(info.fields)];
    if (noneRequired) forms.push({ type: "null" });
    if (info.shorthand !== undefined) forms.push(kindSchema(info.fields[info.shorthand]!.type));
    if (name === "movToCr3") {
      // A scalar is a literal CR3 when it is an integer (a number in quotes is refused), else a space name.
      const spaceName = {
        type: "string",
        pattern: NAME_TEXT,
        not: { pattern: QUOTED_NUMBER_PATTERN.source },
      };
      forms.push(spaceName, kindSchema({ kind: "u64" }));
    }
    variants.push({
      type: "object",
      description: info.description,
      additionalProperties: false,
      required: [name],
      properties: { [name]: { description: info.description, anyOf: forms } },
    });
  }
  return {
    oneOf: [{ type: "string", enum: bare, description: "an operation without operands" }, ...variants],
  };
}

/**
 * JSON Schema (draft 2020-12) of workload files, generated from the same field tables as the
 * validator. Point an editor at it (`# yaml-language-server: $schema=…/workload.schema.json`) to get
 * completion and hover help. It cannot express everything the validator checks (mapped addresses,
 * CR values against the paging mode), so a file can pass the schema and still be rejected.
 */
export const WORKLOAD_JSON_SCHEMA: Schema = Object.freeze({
  $schema: "https://json-schema.org/draft/2020-12/schema",
  title: "nestvisor workload",
  description: "A guest program of architectural operations for the nestvisor model (YAML or JSON).",
  ...objectSchema(WORKLOAD_FIELDS),
  $defs: { step: stepSchema() },
});
