import { describe, expect, it } from "vitest";
import {
  CONTRIBUTORY_VECTORS,
  ERROR_CODE_VECTORS,
  EXCEPTIONS,
  exceptionHasErrorCode,
  exceptionInfo,
  exceptionName,
  exceptionVector,
  raisesDoubleFault,
  VECTOR,
} from "./exceptions";

describe("exception table", () => {
  it("numbers #DE 0 through #CP 21 and AMD's #HV 28, #VC 29, #SX 30", () => {
    expect(EXCEPTIONS.map((e) => e.vector)).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20, 21, 28, 29, 30,
    ]);
    expect(EXCEPTIONS.filter((e) => e.vendor === "amd").map((e) => e.mnemonic)).toEqual([
      "#HV",
      "#VC",
      "#SX",
    ]);
  });

  it("pushes an error code for #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC and #SX only", () => {
    const withCode = EXCEPTIONS.filter((e) => e.errorCode).map((e) => e.mnemonic);
    expect(withCode).toEqual(["#DF", "#TS", "#NP", "#SS", "#GP", "#PF", "#AC", "#CP", "#VC", "#SX"]);
    expect(ERROR_CODE_VECTORS).toBe(0x60227d00);
    for (let v = 0; v < 256; v++) {
      expect(exceptionHasErrorCode(v)).toBe(exceptionInfo(v)?.errorCode ?? false);
    }
  });

  it("classes #BP and #OF as traps, #DF and #MC as aborts, NMI as an interrupt and #DB as fault/trap", () => {
    expect(exceptionInfo(VECTOR.BP)?.class).toBe("trap");
    expect(exceptionInfo(VECTOR.OF)?.class).toBe("trap");
    expect(exceptionInfo(VECTOR.DF)?.class).toBe("abort");
    expect(exceptionInfo(VECTOR.MC)?.class).toBe("abort");
    expect(exceptionInfo(VECTOR.NMI)?.class).toBe("interrupt");
    expect(exceptionInfo(VECTOR.DB)?.class).toBe("fault/trap");
    expect(exceptionInfo(VECTOR.PF)?.class).toBe("fault");
  });

  it("names vectors and leaves reserved vectors and user interrupts unnamed", () => {
    expect(exceptionName(14)).toBe("#PF");
    expect(exceptionName(2)).toBe("NMI");
    expect(exceptionName(15)).toBeUndefined();
    expect(exceptionName(22)).toBeUndefined();
    expect(exceptionName(0x80)).toBeUndefined();
    expect(() => exceptionName(256)).toThrow(RangeError);
    expect(() => exceptionName(1.5)).toThrow(RangeError);
  });

  it("finds vectors by mnemonic with or without #, in any case", () => {
    expect(exceptionVector("#PF")).toBe(14);
    expect(exceptionVector("PF")).toBe(14);
    expect(exceptionVector("gp")).toBe(13);
    expect(exceptionVector("NMI")).toBe(2);
    expect(exceptionVector("#cp")).toBe(21);
    for (const e of EXCEPTIONS) expect(exceptionVector(e.mnemonic)).toBe(e.vector);
    expect(() => exceptionVector("#XX")).toThrow(/"#XX"/);
  });

  it("marks #DE, #TS, #NP, #SS, #GP and #CP contributory and #PF, #VE as page faults", () => {
    const contributory = EXCEPTIONS.filter((e) => e.doubleFaultClass === "contributory").map((e) => e.vector);
    expect(contributory).toEqual([0, 10, 11, 12, 13, 21]);
    expect(CONTRIBUTORY_VECTORS).toBe((1 << 0) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 21));
    expect(EXCEPTIONS.filter((e) => e.doubleFaultClass === "page fault").map((e) => e.vector)).toEqual([
      14, 20,
    ]);
  });

  it("applies the double-fault combinations of SDM Table 6-5", () => {
    expect(raisesDoubleFault(VECTOR.GP, VECTOR.NP)).toBe(true);
    expect(raisesDoubleFault(VECTOR.GP, VECTOR.PF)).toBe(false);
    expect(raisesDoubleFault(VECTOR.PF, VECTOR.PF)).toBe(true);
    expect(raisesDoubleFault(VECTOR.PF, VECTOR.GP)).toBe(true);
    expect(raisesDoubleFault(VECTOR.PF, VECTOR.UD)).toBe(false);
    expect(raisesDoubleFault(VECTOR.DB, VECTOR.GP)).toBe(false);
    expect(raisesDoubleFault(VECTOR.VE, VECTOR.DE)).toBe(true);
    expect(raisesDoubleFault(0x20, VECTOR.GP)).toBe(false);
  });
});
