import { resolve } from "node:path";
import {
  DEFAULT_VMCS12_ERA,
  FIELD_TYPE_NAMES,
  FIELD_WIDTH_NAMES,
  fieldByEncoding,
  fieldType,
  formatFieldEncoding,
  VMCS12_ERAS,
  vmcs12Layout,
} from "@nestvisor/vmx";
import type { Command, CommandGroup } from "../framework/command";
import { booleanOption, JSON_OPTION, stringOption } from "../framework/options";
import { writeJson, writeLines } from "../framework/output";
import { renderTable } from "../framework/table";
import { readBytesFile } from "../model/files";
import { checkEra, readVmcs12Image } from "../model/vmcs12-image";

const ERA_OPTION = {
  name: "era",
  type: "string" as const,
  value: "v6.12|v5.3",
  description: `kernel whose struct vmcs12 to use (${VMCS12_ERAS.join(", ")})`,
  defaultText: DEFAULT_VMCS12_ERA,
};

const layoutCommand: Command = {
  name: "vmcs12 layout",
  summary: "Print the vmcs12 ABI: every field KVM stores, with its encoding, width, type and byte offset.",
  usage: "vmcs12 layout [--era E] [--json]",
  description:
    "The layout of KVM's struct vmcs12 (arch/x86/kvm/vmx/vmcs12.h) and its offset table (vmcs12.c), which L1's " +
    "memory and KVM_GET/SET_NESTED_STATE use. A 64-bit field has a second encoding for its high half (offset + 4).",
  options: [ERA_OPTION, JSON_OPTION],
  examples: [
    { command: "nestvisor vmcs12 layout", description: "the table" },
    { command: "nestvisor vmcs12 layout --era v5.3 --json", description: "the 2019 layout as JSON" },
  ],
  run(ctx) {
    const era = checkEra(stringOption(ctx.values, "era") ?? DEFAULT_VMCS12_ERA);
    const layout = vmcs12Layout(era);
    const rows = layout.fields.map((f) => ({
      name: f.name,
      encoding: formatFieldEncoding(f.encoding),
      width: FIELD_WIDTH_NAMES[f.width],
      type: FIELD_TYPE_NAMES[fieldType(f.encoding)],
      offset: f.offset,
    }));
    if (booleanOption(ctx.values, "json")) {
      writeJson(ctx.out, rows);
      return 0;
    }
    const lines = [
      ctx.style.bold(
        `struct vmcs12 (${era}): ${layout.structSize} bytes in a ${4096}-byte region, ${layout.fields.length} encodings`,
      ),
      "",
      ...renderTable(
        [
          { header: "offset", align: "right" },
          { header: "hex", align: "right" },
          { header: "encoding" },
          { header: "field" },
          { header: "width" },
          { header: "type" },
        ],
        rows.map((r) => [
          String(r.offset),
          `0x${r.offset.toString(16)}`,
          r.encoding,
          r.name,
          r.width,
          r.type,
        ]),
        { style: ctx.style },
      ),
    ];
    writeLines(ctx.out, lines);
    return 0;
  },
};

const dumpCommand: Command = {
  name: "vmcs12 dump",
  summary: "Decode a vmcs12 region, or the vmcs12 in a KVM_GET_NESTED_STATE buffer, into named fields.",
  usage: "vmcs12 dump <file> [--era E] [--all] [--force] [--json]",
  description:
    "The file is either the raw 4096-byte region or a KVM_GET_NESTED_STATE buffer (struct kvm_nested_state: a " +
    "128-byte header, the vmcs12, then the shadow vmcs12 if any). The revision must be KVM's vmcs12 revision " +
    "(0x11e57ed0) unless --force is given. Without --all, fields that are zero are counted but not listed.",
  options: [
    ERA_OPTION,
    { name: "all", short: "a", type: "boolean", description: "list zero fields too" },
    { name: "force", type: "boolean", description: "decode even if the revision is not KVM's" },
    JSON_OPTION,
  ],
  positionals: { min: 1, max: 1, names: "a vmcs12 or nested-state file" },
  examples: [
    { command: "nestvisor vmcs12 dump vmcs12.bin", description: "a raw region" },
    {
      command: "nestvisor vmcs12 dump nested-state.bin --json",
      description: "the vmcs12 of a saved nested state, as JSON",
    },
  ],
  run(ctx) {
    const file = ctx.positionals[0]!;
    const era = checkEra(stringOption(ctx.values, "era") ?? DEFAULT_VMCS12_ERA);
    const bytes = readBytesFile(resolve(ctx.cwd, file), file, "vmcs12");
    const image = readVmcs12Image(bytes, file, era, booleanOption(ctx.values, "force"));
    const v = image.vmcs12;
    const fields = v.toFields();
    const header = {
      revision: `0x${v.revision.toString(16)}`,
      shadowVmcs: v.shadowVmcs,
      abort: v.abort,
      launchState: v.launchState === 1 ? "launched" : v.launchState === 0 ? "clear" : String(v.launchState),
    };
    if (booleanOption(ctx.values, "json")) {
      writeJson(ctx.out, {
        source: image.source,
        era,
        ...(image.nestedState === undefined ? {} : { nestedState: image.nestedState }),
        header,
        fields: fields.map((f) => ({
          name: f.name,
          encoding: formatFieldEncoding(f.encoding),
          offset: f.offset,
          width: FIELD_WIDTH_NAMES[f.width],
          value: `0x${f.value.toString(16)}`,
        })),
      });
      return 0;
    }
    const all = booleanOption(ctx.values, "all");
    const shown = all ? fields : fields.filter((f) => f.value !== 0n);
    const lines = [
      ctx.style.bold(
        `${file}: vmcs12 (${era} layout) from ${image.source === "raw" ? "a raw region" : "a KVM_GET_NESTED_STATE buffer"}`,
      ),
      `revision ${header.revision}${header.shadowVmcs ? " (shadow VMCS)" : ""}, abort ${header.abort}, launch state ${header.launchState}`,
    ];
    if (image.nestedState !== undefined) {
      const n = image.nestedState;
      lines.push(
        `nested state: flags ${n.flags.length > 0 ? n.flags.join("|") : "0"}, size ${n.size}, vmxon_pa ${n.vmxonPa}, vmcs12_pa ${n.vmcs12Pa}, smm ${n.smmFlags.length > 0 ? n.smmFlags.join("|") : "0"}${n.hasShadowVmcs12 ? ", shadow vmcs12 present" : ""}`,
      );
    }
    lines.push(
      "",
      ...renderTable(
        [
          { header: "offset", align: "right" },
          { header: "encoding" },
          { header: "field" },
          { header: "value", align: "right" },
          { header: "what", minWidth: 12 },
        ],
        shown.map((f) => [
          String(f.offset),
          formatFieldEncoding(f.encoding),
          f.name,
          f.text,
          fieldByEncoding(f.encoding)?.title ?? "",
        ]),
        { style: ctx.style },
      ),
    );
    if (!all)
      lines.push(
        "",
        `${fields.length - shown.length} of ${fields.length} fields are zero (--all lists them)`,
      );
    writeLines(ctx.out, lines);
    return 0;
  },
};

export const vmcs12Group: CommandGroup = {
  name: "vmcs12",
  summary: "KVM's vmcs12 ABI: print the layout, or decode a dump.",
  subcommands: [layoutCommand, dumpCommand],
  examples: [
    { command: "nestvisor vmcs12 layout --json", description: "the ABI table as JSON" },
    { command: "nestvisor vmcs12 dump vmcs12.bin", description: "decode a 4-KiB region" },
  ],
};
