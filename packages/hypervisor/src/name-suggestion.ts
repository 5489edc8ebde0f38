/**
 * "Did you mean" suggestions for misspelt names in workloads: file keys, operation names, address
 * spaces, built-in workload names and their parameters.
 */

/** Lower case with `_`, `-` and spaces removed, so `address_spaces` matches `addressSpaces`. */
function fold(text: string): string {
  return text.toLowerCase().replace(/[_\-\s]/g, "");
}

/** Optimal-string-alignment distance (Levenshtein plus adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d = new Uint16Array(rows * cols);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(
        d[(i - 1) * cols + j]! + 1,
        d[i * cols + j - 1]! + 1,
        d[(i - 1) * cols + j - 1]! + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[(i - 2) * cols + j - 2]! + 1);
      }
      d[i * cols + j] = best;
    }
  }
  return d[rows * cols - 1]!;
}

/**
 * The candidate closest to `input`, or undefined when none is close: same name up to case and
 * separators, or an edit distance of at most max(1, ⌊length / 3⌋) on the folded forms.
 */
export function didYouMean(input: string, candidates: Iterable<string>): string | undefined {
  const folded = fold(input);
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = editDistance(folded, fold(candidate));
    if (distance < bestDistance) {
      bestDistance = distance;
      best = candidate;
    }
  }
  const limit = Math.max(1, Math.floor(folded.length / 3));
  return bestDistance <= limit ? best : undefined;
}

/** ` (did you mean "x"?)` or the empty string. */
export function didYouMeanSuffix(input: string, candidates: Iterable<string>): string {
  const suggestion = didYouMean(input, candidates);
  return suggestion === undefined ? "" : ` (did you mean "${suggestion}"?)`;
}
