/* A meter panel (a stage's report, live or from a file) drawn with uPlot: the figures
   table as the server formatted it (rtq.ui.figures, the terminal's code), the error
   spectrum against its theoretical floor and target, the histogram, the bits in use (or levels in use),
   the noise modulation, and (for a file) the error level over time. */
"use strict";
const meter = (() => {
  const { el } = rtq;
  const COLORS = { psd: "#f2c14e", target: "#4fc3f7", floor: "#e07be0", bars: "#5cc98b", level: "#f2c14e" };

  function table(node, data) {
    const multi = data.channels.length > 1 || data.channels[0] !== "";
    const head = el("tr", {}, el("th", { text: "figure" }), el("th", { text: "unit" }));
    for (const window of data.windows) {
      for (const name of data.channels) {
        head.append(el("th", { text: (window.slice(0, 3) + ". " + (multi ? name : "")).trim() }));
      }
    }
    const body = el("tbody");
    for (const [label, unit, cells] of data.rows) {
      const row = el("tr", {}, el("td", { text: label }), el("td", { class: "unit", text: unit }));
      for (const cell of cells) row.append(el("td", { text: cell }));
      body.append(row);
    }
    node.replaceChildren(el("thead", {}, head), body);
  }

  function dbAxis(label) {
    return { label, stroke: "#97a3af", grid: { stroke: "#2c3540" }, ticks: { stroke: "#2c3540" }, size: 55 };
  }

  /* A uPlot that follows its container's width. */
  function chart(node, options, data) {
    const width = () => Math.max(node.clientWidth, 200);
    const plot = new uPlot(Object.assign({ width: width(), height: options.height || 240,
                                           legend: { show: false }, cursor: { show: false } }, options), data, node);
    new ResizeObserver(() => plot.setSize({ width: width(), height: options.height || 240 })).observe(node);
    return plot;
  }

  function bars(node, xLabel, yLabel, height) {
    return chart(node, {
      height, scales: { x: { time: false } },
      axes: [dbAxis(xLabel), dbAxis(yLabel)],
      series: [{}, { stroke: COLORS.bars, fill: "rgba(92,201,139,0.35)",
                     paths: uPlot.paths.bars({ size: [0.9, 60] }), points: { show: false } }],
    }, [[0, 1], [0, 0]]);
  }

  function bitsRow(node, bits, offGrid) {
    node.replaceChildren();
    if (!bits) { node.append(el("span", { class: "dim", text: "no grid (companding or no quantizer)" })); return; }
    const cells = el("span", { class: "bits" });
    for (let k = bits.length - 1; k >= 0; k--) cells.append(el("span", { class: bits[k] ? "on" : "", title: `bit ${k}` }));
    const used = bits.filter(Boolean).length;
    node.append(cells, el("span", { class: "mono", text: ` ${used}/${bits.length}` + (offGrid ? ` off-grid ${offGrid}` : "") }));
  }

  // A Lloyd-Max quantizer's levels: a cell per level (lit where it occurs), grouped
  // beyond LEVEL_CELLS as on the terminal screen.
  const LEVEL_CELLS = 48;
  function levelsRow(node, hist, channel, offLevels) {
    node.replaceChildren();
    if (!hist) { node.append(el("span", { class: "dim", text: "-" })); return; }
    const counts = hist.count[channel], groups = Math.min(counts.length, LEVEL_CELLS);
    const cells = el("span", { class: "bits" });
    for (let g = 0; g < groups; g++) {
      const lo = Math.floor(g * counts.length / groups), hi = Math.floor((g + 1) * counts.length / groups);
      let n = 0;
      for (let k = lo; k < hi; k++) n += counts[k];
      cells.append(el("span", { class: n ? "on" : "", title: `${hi - lo > 1 ? "levels" : "level"} ${lo + 1}: ${n}` }));
    }
    node.append(cells, el("span", { class: "mono", text: ` ${hist.in_use[channel]}/${counts.length}`
                                                          + (offLevels ? ` off-levels ${offLevels}` : "") }));
  }

  function scalesText(scales, channel) {
    if (!scales) return "";
    const blocks = scales.blocks[channel], total = blocks.reduce((a, b) => a + b, 0);
    return "scales (int., step 2^-k): " + scales.steps.map((step, s) =>
      `${-Math.round(Math.log2(step))}:${total ? Math.round(100 * blocks[s] / total) + "%" : "-"}`).join("  ");
  }

  class Panel {
    constructor(root, { history = false } = {}) {
      this.root = root;
      const specNode = el("div", { class: "plot" }), histNode = el("div", { class: "plot" });
      const nmNode = el("div", { class: "plot" }), histNote = el("div", { class: "dim" });
      this.bitsMom = el("div"), this.bitsInt = el("div"), this.theory = el("div", { class: "dim" });
      this.bitsTitle = el("h2", { text: "bits in use (MSB … LSB)" }), this.scales = el("div", { class: "mono" });
      this.specNote = el("div", { class: "dim" }), this.histNote = histNote, this.nmNote = el("div", { class: "mono" });
      root.append(
        el("section", { class: "panel" },
           el("h2", {}, "error spectrum ", el("span", { class: "dim", text: "(dBFS per bin, log frequency) " }),
              el("span", { class: "legend-psd", text: "━ error PSD " }), el("span", { class: "legend-target", text: "━ target " }),
              el("span", { class: "legend-floor", text: "┅ floor" })),
           specNode, this.specNote, this.theory),
        el("div", { class: "grid" },
           el("section", { class: "panel" }, el("h2", { text: "error histogram (in LSB)" }), histNode, histNote),
           el("section", { class: "panel" },
              this.bitsTitle, this.bitsMom, this.bitsInt, this.scales,
              el("h2", { text: "noise modulation (error per 6 dB band of input)" }), nmNode, this.nmNote)));
      this.spectrum = chart(specNode, {
        height: 300, scales: { x: { time: false, distr: 3, log: 10, range: (u, lo, hi) => [lo, hi] } },
        axes: [dbAxis("Hz"), dbAxis("dBFS")],
        series: [{}, { stroke: COLORS.psd, width: 1.5, points: { show: false } },
                 { stroke: COLORS.target, width: 1.5, points: { show: false } },
                 { stroke: COLORS.floor, width: 1.5, dash: [6, 4], points: { show: false } }],
      }, [[20, 20000], [null, null], [null, null], [null, null]]);
      this.histogram = bars(histNode, "LSB", "count", 200);
      this.noise = bars(nmNode, "input level (dBFS)", "error (dBFS)", 180);
      if (history) {
        const levelNode = el("div", { class: "plot" });
        root.append(el("section", { class: "panel" }, el("h2", { text: "error level over time (dBFS)" }), levelNode));
        this.level = chart(levelNode, { height: 200, scales: { x: { time: false } }, axes: [dbAxis("s"), dbAxis("dBFS")],
                                        series: [{}, { stroke: COLORS.level, width: 1.5, points: { show: false } }] },
                           [[0, 1], [null, null]]);
      }
    }

    update(panel, integrated, channel) {
      if (!panel) { this.specNote.textContent = "waiting for the meter…"; return; }
      const spec = panel.spectrum;
      if (spec) {
        this.spectrum.setData([spec.hz, spec.psd[Math.min(channel, spec.psd.length - 1)],
                               spec.target || spec.hz.map(() => null), spec.floor || spec.hz.map(() => null)]);
        this.specNote.textContent = "";
      } else {
        this.specNote.textContent = "waiting for a full spectrum segment…";
      }
      this.theory.textContent = panel.theory || "";
      const hist = panel.histogram;
      if (hist) {
        this.histogram.setData([hist.lsb, hist.count[channel]]);
        const under = hist.under[channel], over = hist.over[channel];
        const span = Math.round(hist.lsb[hist.lsb.length - 1] - hist.lsb[0] + (hist.lsb[1] - hist.lsb[0])) / 2;
        this.histNote.textContent = under || over ? `beyond ±${span} LSB: ${under} below, ${over} above` : "";
      } else {
        this.histNote.textContent = "no grid";
      }
      const line = (name, report) => {
        const bits = report && report.bits_in_use ? report.bits_in_use[channel] : null;
        const off = report && report.off_grid ? report.off_grid[channel] : 0;
        return [name, bits, off];
      };
      const levels = panel.level_histogram || (integrated && integrated.level_histogram);
      this.bitsTitle.textContent = levels ? "levels in use (lowest … highest)" : "bits in use (MSB … LSB)";
      for (const [node, report, [name, bits, off]] of [[this.bitsMom, panel, line("mom.", panel)],
                                                         [this.bitsInt, integrated, line("int.", integrated)]]) {
        if (levels) levelsRow(node, report && report.level_histogram, channel, off);
        else bitsRow(node, bits, off);
        node.prepend(el("span", { class: "dim", text: name + " " }));
      }
      this.scales.textContent = scalesText(integrated && integrated.scale_factors, channel);
      const nm = (integrated || panel).noise_modulation;
      if (nm) {
        this.noise.setData([nm.band_lo_dbfs, nm.error_dbfs[channel]]);
        const spread = nm.spread_db[channel];
        this.nmNote.textContent = `spread ${spread === null ? "-" : spread.toFixed(1)} dB`;
      }
      if (this.level && panel.level_history && panel.level_history.time_s.length) {
        this.level.setData([panel.level_history.time_s, panel.level_history.rms_dbfs[channel]]);
      }
    }
  }

  return { table, Panel };
})();
