import { DEFAULT_PRESET_NAME, type HypervisorFlagName, type HypervisorModel } from "@nestvisor/hypervisor";
import { UsageError } from "../framework/errors";
import { type OptionValues, repeatedOption, stringOption } from "../framework/options";
import { modelOverrides } from "./compare-matrix";
import { parseFlagOptions } from "./flag-args";
import { baseModel, loadModelModule, modelFailure } from "./model-module";
import { notModelledMessage } from "./not-modelled";
import { loadProfile } from "./profile-ref";

/** The one model a single-run command (run, explain) uses, from --preset, --flag, --profile, --model. */
export interface CommandModel {
  readonly model: HypervisorModel;
  /** The model module's model name, or null for the project's KVM model. */
  readonly modelName: string | null;
  /** The flags the model runs with on top of its preset (what the JSON rows report). */
  readonly flags: Partial<Record<HypervisorFlagName, boolean>>;
}

export async function commandModel(values: OptionValues, cwd: string): Promise<CommandModel> {
  const overrides = parseFlagOptions(repeatedOption(values, "flag"));
  const base = {
    preset: stringOption(values, "preset") ?? DEFAULT_PRESET_NAME,
    flags: overrides,
    profile: loadProfile(stringOption(values, "profile"), cwd),
  };
  const modulePath = stringOption(values, "model");
  if (modulePath === undefined) return { model: baseModel(base), modelName: null, flags: overrides };
  const model = await loadModelModule(modulePath, cwd, base);
  return { model, modelName: model.name, flags: modelOverrides(model, overrides) };
}

/**
 * Runs `work` on the command's model: a configuration the model does not cover is bad usage (exit
 * 2); anything else a model module throws is that model failing on `where` (exit 1).
 */
export function onCommandModel<T>(chosen: CommandModel, where: string, work: () => T): T {
  try {
    return work();
  } catch (error) {
    const why = notModelledMessage(error);
    if (why !== undefined) throw new UsageError(why);
    if (chosen.modelName !== null) throw modelFailure(error, chosen.modelName, where);
    throw error;
  }
}
