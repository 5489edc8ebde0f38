import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkWellFormedSvg } from "../testing/xml";
import { escapeXml, renderBarChart } from "./svg-chart";

describe("renderBarChart", () => {
  it("draws one bar per variant and value, scaled within the group", () => {
    const svg = renderBarChart({
      title: "t",
      subtitle: "s",
      unit: "cycles",
      groups: [
        {
          label: "cpuid · L2",
          bars: [
            { label: "v5.2", value: 9049 },
            { label: "v6.12", value: 6937 },
            { label: "x", value: null },
          ],
        },
      ],
    });
    checkWellFormedSvg(svg);
    expect(svg).toContain('xmlns="http://www.w3.org/2000/svg"');
    expect(svg.match(/<rect x="190"/g)).toHaveLength(2);
    expect(svg).toContain('width="560.0"');
    expect(svg).toContain(">9,049<");
    expect(svg).toContain("not modelled");
  });

  it("escapes any label into well-formed XML", () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.string(),
        fc.double({ min: 0, max: 1e9, noNaN: true }),
        (group, variant, value) => {
          checkWellFormedSvg(
            renderBarChart({
              title: group,
              subtitle: variant,
              unit: "u",
              groups: [{ label: group, bars: [{ label: variant, value }] }],
            }),
          );
        },
      ),
    );
    expect(escapeXml(`<a & "b">`)).toBe("&lt;a &amp; &quot;b&quot;&gt;");
    expect(escapeXml(`a${String.fromCharCode(0)}b${String.fromCharCode(7)}`)).toBe("ab");
  });
});
