/**
 * Configurations the model refuses (e.g. ept=off under a nested guest) throw a RangeError saying they
 * are not modelled: the message, or undefined for any other error.
 */
export function notModelledMessage(error: unknown): string | undefined {
  return error instanceof RangeError && /not modelled/.test(error.message) ? error.message : undefined;
}
