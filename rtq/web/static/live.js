/* rtq live --web: the meter, updated by the server 20 times a second, and the
   controls: each message a LiveSession method (the same the terminal's keys call). */
"use strict";
(() => {
  const { $, el, send } = rtq;
  const panel = new meter.Panel($("panel"));
  let init = null, last = null, channel = 0;

  function options(select, values, labels) {
    select.replaceChildren(...values.map((v, k) => el("option", { value: String(v), text: labels ? labels[k] : String(v) })));
  }

  rtq.on("init", (message) => {
    init = message;
    options($("dither"), message.dithers);
    options($("shaping"), message.shapings);
    options($("preset-choice"), message.presets);
    rtq.help(message.keys);
  });

  rtq.on("meter", (message) => {
    last = message;
    const h = message.header, line = message.line;
    $("preset").textContent = h.preset;
    $("h-stream").textContent = `${h.samplerate} · ${h.channels} ch · input ${h.input} · ${h.seconds.toFixed(1)} s · t ${line.time_s.toFixed(3)} s`;
    $("h-quantizer").textContent = h.bits === null ? "no requantize stage" : `bits ${h.bits} · dither ${h.dither} · shaping ${h.shaping}`;
    const mode = { normal: "NORMAL", bypass: "BYPASS", solo: "ERROR SOLO" }[h.mode] || h.mode;
    $("h-mode").textContent = mode;
    $("h-mode").className = `mode-${h.mode}`;
    const dropped = message.momentary && message.momentary.dropped_frames;
    $("h-stage").textContent = `${h.stage + 1}/${h.stages.length}: ${h.stages[h.stage]} at ${h.rate}` +
      (dropped ? ` · meter capture gaps: ${dropped} frames not metered` : "");
    $("h-xruns").textContent = String(line.xruns);
    $("h-xruns").className = line.xruns ? "mode-solo" : "mode-normal";
    $("h-load").textContent = h.load;
    $("bits").textContent = h.bits === null ? "-" : String(h.bits);
    for (const [id, value] of [["dither", h.dither], ["shaping", h.shaping], ["preset-choice", h.preset]]) {
      if (document.activeElement !== $(id) && value !== null) $(id).value = value;
    }
    $("bypass").setAttribute("aria-pressed", String(h.mode === "bypass"));
    $("solo").setAttribute("aria-pressed", String(h.mode === "solo"));
    if ($("stage").options.length !== h.stages.length || $("stage").dataset.labels !== h.stages.join("|")) {
      options($("stage"), h.stages.map((_, k) => k), h.stages.map((s, k) => `${k + 1}: ${s}`));
      $("stage").dataset.labels = h.stages.join("|");
    }
    if (document.activeElement !== $("stage")) $("stage").value = String(h.stage);
    if ($("channel").options.length !== h.channels) {
      options($("channel"), [...Array(h.channels).keys()], [...Array(h.channels).keys()].map((c) => `ch ${c + 1}`));
    }
    meter.table($("figures"), message.table);
    const counts = line.counts;
    $("counts").textContent = `since start: clips ${counts.clips.join(", ")} · non-finite ${counts.nonfinite.join(", ")} · loop resets ${counts.loop_resets.join(", ")}`;
    panel.update(message.momentary, message.integrated, Math.min(channel, h.channels - 1));
  });

  const header = () => (last ? last.header : null);
  function bits(delta) {
    const h = header();
    if (!h || h.bits === null || !init) return;
    send("set_bits", { value: Math.min(Math.max(h.bits + delta, init.bits[0]), init.bits[1]) });
  }
  function cycle(list, current, step) { return list[(list.indexOf(current) + step + list.length) % list.length]; }
  const actions = {
    bits_up: () => bits(1), bits_down: () => bits(-1),
    dither: () => header() && send("set_dither", { value: cycle(init.dithers, header().dither, 1) }),
    shaping: () => header() && send("set_shaping", { value: cycle(init.shapings, header().shaping, 1) }),
    bypass: () => header() && send("set_bypass", { on: header().mode !== "bypass" }),
    solo: () => header() && send("set_solo", { on: header().mode !== "solo" }),
    next_preset: () => header() && send("switch_preset", { name: cycle(init.presets, header().preset, 1) }),
    prev_preset: () => header() && send("switch_preset", { name: cycle(init.presets, header().preset, -1) }),
    next_stage: () => header() && send("set_stage", { stage: (header().stage + 1) % header().stages.length }),
    prev_stage: () => header() && send("set_stage", { stage: (header().stage - 1 + header().stages.length) % header().stages.length }),
    channel: () => { if (header()) { channel = (channel + 1) % header().channels; $("channel").value = String(channel); } },
    reset: () => send("reset"),
    help: () => { $("help").classList.toggle("shown"); $("help-button").setAttribute("aria-expanded", String($("help").classList.contains("shown"))); },
  };
  $("bits-up").addEventListener("click", actions.bits_up);
  $("bits-down").addEventListener("click", actions.bits_down);
  $("dither").addEventListener("change", (e) => send("set_dither", { value: e.target.value }));
  $("shaping").addEventListener("change", (e) => send("set_shaping", { value: e.target.value }));
  $("preset-choice").addEventListener("change", (e) => send("switch_preset", { name: e.target.value }));
  $("stage").addEventListener("change", (e) => send("set_stage", { stage: Number(e.target.value) }));
  $("channel").addEventListener("change", (e) => { channel = Number(e.target.value); });
  $("bypass").addEventListener("click", actions.bypass);
  $("solo").addEventListener("click", actions.solo);
  $("reset").addEventListener("click", actions.reset);
  $("help-button").addEventListener("click", actions.help);
  document.addEventListener("keydown", (event) => {
    if (!init || event.ctrlKey || event.altKey || event.metaKey) return;
    if (["SELECT", "INPUT", "TEXTAREA"].includes(event.target.tagName)) return;
    const name = rtq.keyName(event);
    const found = init.keys.find(([keys]) => keys.includes(name)) || (name === "esc" ? [[], "help"] : null);
    if (!found || found[1] === "quit") return;
    if (name === "esc" && !$("help").classList.contains("shown")) return;
    event.preventDefault();
    (actions[found[1]] || (() => {}))();
  });
  rtq.connect();
})();
