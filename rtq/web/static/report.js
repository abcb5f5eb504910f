/* rtq report --web: every stage of a report file, drawn as the live meter draws one. */
"use strict";
(() => {
  const { $, el } = rtq;
  let shown = null, panels = [], channel = 0;

  function draw() {
    shown.stages.forEach((stage, k) => panels[k].update(stage.panel, null, channel));
  }

  rtq.on("report", (message) => {
    shown = message;
    $("name").textContent = message.name;
    $("about").textContent = Object.entries(message.about).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
    const root = $("stages");
    root.replaceChildren();
    panels = message.stages.map((stage) => {
      const table = el("table", { class: "figures mono" });
      const holder = el("div");
      root.append(el("section", { class: "panel" },
                     el("h2", { text: `${stage.label}${stage.panel && stage.panel.rate ? " at " + stage.panel.rate : ""}` }),
                     el("div", { class: "scroll" }, table)), holder);
      meter.table(table, stage.table);
      return new meter.Panel(holder, { history: true });
    });
    const count = message.stages.length ? message.stages[0].table.channels.length : 1;
    $("channel").replaceChildren(...[...Array(count).keys()].map((c) => el("option", { value: String(c), text: `ch ${c + 1}` })));
    draw();
  });
  $("channel").addEventListener("change", (e) => { channel = Number(e.target.value); if (shown) draw(); });
  rtq.connect();
})();
