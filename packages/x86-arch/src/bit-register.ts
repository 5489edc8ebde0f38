/**
 * Named bit fields of an architectural register, for decoding, encoding and describing values.
 * Decoders are for display and parsing (the CLI's `decode cr0` etc.), so they work on BigInt;
 * hot paths use the numeric bit constants each register module exports beside its layout.
 */

export interface BitField {
  /** Field name as the SDM (or Linux's headers) spell it, e.g. "PG", "PCID". */
  readonly name: string;
  /** Least significant bit. */
  readonly lsb: number;
  /** Width in bits (1 for a flag). */
  readonly width: number;
  /** One short line: what the field does. */
  readonly description: string;
}

export interface RegisterLayout {
  /** Register name, e.g. "CR0". */
  readonly name: string;
  /** Architectural width in bits. */
  readonly width: 32 | 64;
  /** Defined fields, in ascending bit order. */
  readonly fields: readonly BitField[];
  /** Where the layout comes from, e.g. "SDM 2.5". */
  readonly source: string;
}

/** A decoded field value: flags are booleans, multi-bit fields numbers (every field here is < 2^53). */
export type FieldValue = boolean | number;

export interface DecodedRegister {
  readonly register: string;
  readonly value: bigint;
  readonly fields: Readonly<Record<string, FieldValue>>;
  /** Bits set in the value that no field defines (reserved or unmodelled), or 0n. */
  readonly undefinedBits: bigint;
}

function fieldMask(field: BitField): bigint {
  return ((1n << BigInt(field.width)) - 1n) << BigInt(field.lsb);
}

/** Bits covered by the layout's fields. */
export function definedMask(layout: RegisterLayout): bigint {
  let mask = 0n;
  for (const field of layout.fields) mask |= fieldMask(field);
  return mask;
}

function toBig(layout: RegisterLayout, value: bigint | number): bigint {
  const big = typeof value === "bigint" ? value : BigInt(value);
  if (big < 0n || big >= 1n << BigInt(layout.width)) {
    throw new RangeError(`${layout.name}: ${value} does not fit in ${layout.width} bits`);
  }
  return big;
}

/** Decodes a register value into its named fields. */
export function decodeRegister(layout: RegisterLayout, value: bigint | number): DecodedRegister {
  const big = toBig(layout, value);
  const fields: Record<string, FieldValue> = {};
  for (const field of layout.fields) {
    const raw = (big >> BigInt(field.lsb)) & ((1n << BigInt(field.width)) - 1n);
    fields[field.name] = field.width === 1 ? raw === 1n : Number(raw);
  }
  return { register: layout.name, value: big, fields, undefinedBits: big & ~definedMask(layout) };
}

/**
 * Encodes named fields back into a value. Unnamed fields are zero; an unknown name, a flag given a
 * number, or a number that does not fit its field is an error naming the field.
 */
export function encodeRegister(layout: RegisterLayout, fields: Readonly<Record<string, FieldValue>>): bigint {
  let value = 0n;
  for (const [name, fieldValue] of Object.entries(fields)) {
    const field = layout.fields.find((f) => f.name === name);
    if (field === undefined) throw new RangeError(`${layout.name} has no field "${name}"`);
    let raw: bigint;
    if (typeof fieldValue === "boolean") {
      if (field.width !== 1)
        throw new TypeError(`${layout.name}.${name} is ${field.width} bits wide, not a flag`);
      raw = fieldValue ? 1n : 0n;
    } else {
      if (!Number.isInteger(fieldValue) || fieldValue < 0 || fieldValue >= 2 ** field.width) {
        throw new RangeError(`${layout.name}.${name} = ${fieldValue} does not fit in ${field.width} bits`);
      }
      raw = BigInt(fieldValue);
    }
    value |= raw << BigInt(field.lsb);
  }
  return value;
}

export interface FieldDescription {
  readonly name: string;
  /** "bit 31" or "bits 11:0". */
  readonly bits: string;
  readonly value: FieldValue;
  readonly description: string;
}

/**
 * Lists the fields of a value worth showing a person: every flag that is set and every multi-bit
 * field that is non-zero, in ascending bit order.
 */
export function describeRegister(layout: RegisterLayout, value: bigint | number): FieldDescription[] {
  const decoded = decodeRegister(layout, value);
  const out: FieldDescription[] = [];
  for (const field of layout.fields) {
    const v = decoded.fields[field.name];
    if (v === undefined || v === false || v === 0) continue;
    const bits = field.width === 1 ? `bit ${field.lsb}` : `bits ${field.lsb + field.width - 1}:${field.lsb}`;
    out.push({ name: field.name, bits, value: v, description: field.description });
  }
  return out;
}

/** Helper for layout tables: a one-bit field. */
export function flag(name: string, bit: number, description: string): BitField {
  return { name, lsb: bit, width: 1, description };
}

/** Helper for layout tables: a multi-bit field. */
export function field(name: string, lsb: number, width: number, description: string): BitField {
  return { name, lsb, width, description };
}
