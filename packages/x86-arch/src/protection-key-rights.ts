import { type BitField, flag, type RegisterLayout } from "./bit-register";

/**
 * Protection-key rights registers: PKRU (user pages, RDPKRU/WRPKRU) and IA32_PKRS (supervisor
 * pages, MSR 6E1H) share one format (SDM Vol. 3A 4.6.2, "Protection Keys"): for key i, bit 2i is
 * AD (access disable) and bit 2i+1 is WD (write disable). Both are 32 bits wide.
 */
export const PKEY = {
  /** Number of protection keys. */
  COUNT: 16,
  /** Rights bits per key. */
  BITS_PER_KEY: 2,
  /** AD within a key's pair: no data access to pages with this key. */
  AD: 1,
  /** WD within a key's pair: no writes to pages with this key (for supervisor writes, only with CR0.WP). */
  WD: 2,
  /** Every AD bit (0x55555555). */
  ALL_AD: 0x55555555,
  /** Every WD bit (0xaaaaaaaa). */
  ALL_WD: 0xaaaaaaaa,
} as const;

export interface KeyRights {
  readonly accessDisable: boolean;
  readonly writeDisable: boolean;
}

function keyFields(register: string): BitField[] {
  const fields: BitField[] = [];
  for (let key = 0; key < PKEY.COUNT; key++) {
    fields.push(
      flag(`AD${key}`, 2 * key, `key ${key}: access disable (no data reads or writes) for ${register}`),
    );
    fields.push(flag(`WD${key}`, 2 * key + 1, `key ${key}: write disable for ${register}`));
  }
  return fields;
}

/** PKRU layout for decoding and display (SDM 4.6.2). */
export const PKRU_LAYOUT: RegisterLayout = {
  name: "PKRU",
  width: 32,
  source: "SDM Vol. 3A 4.6.2",
  fields: keyFields("user-mode pages"),
};

/** IA32_PKRS layout for decoding and display (SDM 4.6.2; MSR 6E1H, bits 63:32 reserved). */
export const PKRS_LAYOUT: RegisterLayout = {
  name: "IA32_PKRS",
  width: 32,
  source: "SDM Vol. 3A 4.6.2; SDM Vol. 4 Table 2-2 (MSR 6E1H)",
  fields: keyFields("supervisor-mode pages"),
};

function checkKey(key: number): void {
  if (!Number.isInteger(key) || key < 0 || key >= PKEY.COUNT) {
    throw new RangeError(`protection key ${key} is not an integer in [0, 15]`);
  }
}

/** The AD/WD pair of `key` in a PKRU or IA32_PKRS value. */
export function keyRights(value: number, key: number): KeyRights {
  checkKey(key);
  const pair = (value >>> (PKEY.BITS_PER_KEY * key)) & 3;
  return { accessDisable: (pair & PKEY.AD) !== 0, writeDisable: (pair & PKEY.WD) !== 0 };
}

/** `value` with the AD/WD pair of `key` replaced; the result is an unsigned 32-bit number. */
export function withKeyRights(value: number, key: number, rights: KeyRights): number {
  checkKey(key);
  const shift = PKEY.BITS_PER_KEY * key;
  const pair = (rights.accessDisable ? PKEY.AD : 0) | (rights.writeDisable ? PKEY.WD : 0);
  return ((value & ~(3 << shift)) | (pair << shift)) >>> 0;
}
