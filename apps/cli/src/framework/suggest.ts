/**
 * "Did you mean" for names typed on the command line (commands, options, decode kinds). Kept here
 * rather than imported so that the entry chunk loads no model code.
 */

/** Levenshtein distance with adjacent transpositions counted as one edit. */
export function editDistance(a: string, b: string): number {
  const width = b.length + 1;
  const d = new Array<number>((a.length + 1) * width).fill(0);
  for (let i = 0; i <= a.length; i++) d[i * width] = i;
  for (let j = 0; j <= b.length; j++) d[j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const substitution = d[(i - 1) * width + j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      let best = Math.min(d[(i - 1) * width + j]! + 1, d[i * width + j - 1]! + 1, substitution);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[(i - 2) * width + j - 2]! + 1);
      }
      d[i * width + j] = best;
    }
  }
  return d[a.length * width + b.length]!;
}

/** The closest candidate within a third of the input's length (at least one edit), or undefined. */
export function closest(input: string, candidates: Iterable<string>): string | undefined {
  const key = input.toLowerCase();
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = editDistance(key, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(1, Math.floor(key.length / 3)) ? best : undefined;
}

/** ` (did you mean "x"?)` or "". */
export function didYouMean(input: string, candidates: Iterable<string>): string {
  const best = closest(input, candidates);
  return best === undefined ? "" : ` (did you mean "${best}"?)`;
}
