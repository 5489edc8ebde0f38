/**
 * How often each 64-bit value was seen, values as unsigned 32-bit halves (`his[i] * 2 ** 32 +
 * los[i]`), in the order first seen. Counting allocates only for a value not seen before.
 */
export class U64Counts {
  readonly los: number[] = [];
  readonly his: number[] = [];
  readonly counts: number[] = [];
  /** Open addressing by value: slot + 1 of each value (0: empty), and the halves it was stored under. */
  private table = new Int32Array(16);
  private tableLo = new Int32Array(16);
  private tableHi = new Int32Array(16);

  get size(): number {
    return this.counts.length;
  }

  /** Counts the value hi * 2 ** 32 + lo (unsigned halves) n times. */
  add(lo: number, hi: number, n = 1): void {
    const l = lo | 0;
    const h = hi | 0;
    const mask = this.table.length - 1;
    let i = Math.imul(l ^ Math.imul(h, 0x85ebca6b), 0x9e3779b1) >>> 0;
    for (; ; i++) {
      const at = i & mask;
      const slot = this.table[at]! - 1;
      if (slot < 0) {
        this.table[at] = this.counts.length + 1;
        this.tableLo[at] = l;
        this.tableHi[at] = h;
        this.los.push(lo);
        this.his.push(hi);
        this.counts.push(n);
        if (this.counts.length * 2 > this.table.length) this.grow();
        return;
      }
      if (this.tableLo[at] === l && this.tableHi[at] === h) {
        this.counts[slot]! += n;
        return;
      }
    }
  }

  /** The slot of the most frequent value (of equals, the first seen), or -1 when empty. */
  mostFrequent(): number {
    let best = -1;
    for (let i = 0; i < this.counts.length; i++)
      if (best < 0 || this.counts[i]! > this.counts[best]!) best = i;
    return best;
  }

  private grow(): void {
    const size = this.table.length * 2;
    this.table = new Int32Array(size);
    this.tableLo = new Int32Array(size);
    this.tableHi = new Int32Array(size);
    const mask = size - 1;
    for (let slot = 0; slot < this.counts.length; slot++) {
      const l = this.los[slot]! | 0;
      const h = this.his[slot]! | 0;
      let i = Math.imul(l ^ Math.imul(h, 0x85ebca6b), 0x9e3779b1) >>> 0;
      while (this.table[i & mask] !== 0) i++;
      this.table[i & mask] = slot + 1;
      this.tableLo[i & mask] = l;
      this.tableHi[i & mask] = h;
    }
  }
}
