import { createHash } from "node:crypto";
import type { CostProfile, HypervisorModel, ModelSpec, WorkloadProgram } from "@nestvisor/hypervisor";
import { modelOverrides, workloadView } from "../model/compare-matrix";
import { baseModel, importModelModule, modelFailure, modelFromExports } from "../model/model-module";
import { notModelledMessage } from "../model/not-modelled";
import { loadProfile } from "../model/profile-ref";
import { resultRow } from "../model/result-row";
import { buildProgram, resolveWorkload, type WorkloadRef } from "../model/workload-ref";
import { describeCell, type GridCell } from "./grid";
import { type CellFrame, notModelledRow, type SweepRow, sweepRow } from "./sweep-row";

/**
 * Runs sweep cells: each row is a pure function of the cell's parameters (the simulation is
 * deterministic), computed the same way in any worker or shard. Workloads, programs, profiles and
 * model modules are loaded once per runner and reused across cells.
 */
export class CellRunner {
  readonly #cwd: string;
  readonly #workloads = new Map<string, WorkloadRef>();
  readonly #programs = new Map<string, WorkloadProgram>();
  readonly #profiles = new Map<string, CostProfile>();

  constructor(cwd: string) {
    this.#cwd = cwd;
  }

  workload(name: string): WorkloadRef {
    let ref = this.#workloads.get(name);
    if (ref === undefined) {
      ref = resolveWorkload(name, this.#cwd);
      this.#workloads.set(name, ref);
    }
    return ref;
  }

  program(cell: GridCell): WorkloadProgram {
    const p = cell.params;
    const key = JSON.stringify([p.workload, p.level, p.iterations, p.params]);
    let program = this.#programs.get(key);
    if (program === undefined) {
      program = buildProgram(this.workload(p.workload), {
        level: p.level,
        ...(p.iterations === null ? {} : { iterations: p.iterations }),
        params: p.params,
      });
      this.#programs.set(key, program);
    }
    return program;
  }

  profile(reference: string): CostProfile {
    let profile = this.#profiles.get(reference);
    if (profile === undefined) {
      profile = loadProfile(reference, this.#cwd);
      this.#profiles.set(reference, profile);
    }
    return profile;
  }

  /** The model of a cell: the project's KVM model, or the module's model on top of the cell's base spec. */
  async model(cell: GridCell): Promise<HypervisorModel> {
    const p = cell.params;
    const base: ModelSpec = { preset: p.preset, flags: p.flags, profile: this.profile(p.profile) };
    if (p.model === null) return baseModel(base);
    return modelFromExports(await importModelModule(p.model, this.#cwd), p.model, base);
  }

  async run(cell: GridCell, frame: Omit<CellFrame, "index" | "key">): Promise<SweepRow> {
    const program = this.program(cell);
    const model = await this.model(cell);
    const p = cell.params;
    const label = {
      workload: this.workload(p.workload).name,
      preset: model.preset,
      model: p.model === null ? null : model.name,
      profile: model.profile.name,
      flags: p.model === null ? p.flags : modelOverrides(model, p.flags),
    };
    const full: CellFrame = { ...frame, index: cell.index, key: cell.key };
    try {
      const result = model.run(program);
      const guest = createHash("sha256").update(workloadView(result)).digest("hex").slice(0, 16);
      return sweepRow(full, resultRow(label, result), guest);
    } catch (error) {
      const why = notModelledMessage(error);
      if (why !== undefined) return notModelledRow(full, label, p.level, why);
      throw modelFailure(error, label.model ?? `kvm-${p.preset}`, `cell ${cell.index} (${describeCell(p)})`);
    }
  }
}
