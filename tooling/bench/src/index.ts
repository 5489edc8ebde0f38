export { type BenchCase, type BenchResult, type MeasureOptions, measure } from "./measure";
export { formatRate, renderTable } from "./report";
