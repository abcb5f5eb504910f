/* rtq listen --web: ABX, ABXY and MUSHRA for a listener.  Every button and key sends
   the terminal's action (rtq.ui.listen), which the server runs on the test driver;
   the page shows only what the server's state says (no score, no assignment). */
"use strict";
(() => {
  const { $, el, send } = rtq;
  let init = null, state = null, wave = null, position = null, drag = null;
  const canvas = $("wave");
  const HANDLE_PX = 12;

  rtq.on("init", (message) => {
    init = message;
    $("title").textContent = `${message.name} · ${message.type.toUpperCase()}${message.practice ? " practice" : ""}`;
    document.title = `rtq listen · ${message.name}`;
    rtq.help(message.keys);
    if (message.type === "mushra") {
      $("mushra").hidden = false;
      const slots = $("slots");
      slots.replaceChildren();
      for (let k = 0; k < message.slots; k++) {
        const slider = el("input", { type: "range", min: message.rating[0], max: message.rating[1], step: 1, value: 50,
                                     class: "vslider", id: `rate-${k}`, "aria-label": `rating of condition ${k + 1}` });
        slider.addEventListener("input", () => { $(`value-${k}`).textContent = slider.value; });
        slider.addEventListener("change", () => send("rate", { slot: k, rating: Number(slider.value) }));
        slots.append(el("div", { class: "slot unrated", id: `slot-${k}` },
                        el("button", { class: "big", id: `play-${k}`, title: String(k < 9 ? k + 1 : k === 9 ? 0 : ""),
                                       onclick: () => send("slot", { slot: k }) }, String(k + 1)),
                        el("div", { class: "row" }, el("div", { class: "scale", "aria-hidden": "true" },
                                                       ...["100", "80", "60", "40", "20", "0"].map((t) => el("span", { text: t }))),
                           slider),
                        el("span", { class: "value", id: `value-${k}`, text: "--" })));
      }
    } else {
      $("abx").hidden = false;
      $("abx-play").replaceChildren(...message.labels.map((label) =>
        el("button", { class: "big", id: `play-${label}`, title: label.toLowerCase(),
                       onclick: () => send(`play_${label}`) }, label)));
    }
  });

  function seconds(t) { return `${t.toFixed(2)} s`; }

  rtq.on("state", (message) => {
    state = message;
    if (message.done) {
      rtq.finish();
      for (const id of ["test", "abx", "mushra", "help"]) $(id).hidden = true;
      $("done").hidden = false;
      $("results").replaceChildren(...message.results.map((line) => el("li", { text: line })));
      $("log").textContent = `log: ${message.log}`;
      if (message.status) rtq.status(message.status[0]);
      return;
    }
    if (!init) return;
    if (init.type === "mushra") {
      $("progress").textContent = `item ${message.item + 1} of ${init.items}`;
    } else {
      $("progress").textContent = `trial ${message.trial + 1} of ${init.trials} · item ${message.item + 1} of ${init.items}`;
      $("note").textContent = init.sequential ? " (sequential: the test ends early once the answers show a difference)" : "";
    }
    $("input").textContent = message.input;
    $("loop").textContent = `loop ${seconds(message.loop[0])} to ${seconds(message.loop[1])}`;
    $("playing").textContent = message.paused ? "paused" : message.playing === null ? "silence" : `playing ${message.playing}`;
    $("pause").setAttribute("aria-pressed", String(message.paused));
    for (const button of document.querySelectorAll("button.big")) button.classList.remove("on");
    const playing = message.playing === "reference" ? $("reference")
      : init.type === "mushra" ? (message.playing ? $(`play-${Number(message.playing) - 1}`) : null)
      : (message.playing ? $(`play-${message.playing}`) : null);
    if (playing && !message.paused) playing.classList.add("on");
    if (init.type === "mushra") {
      let missing = 0;
      message.ratings.forEach((rating, k) => {
        const slot = $(`slot-${k}`), slider = $(`rate-${k}`);
        slot.classList.toggle("unrated", rating === null);
        slot.classList.toggle("selected", k === message.selected);
        if (rating === null) missing += 1;
        if (document.activeElement !== slider) {
          slider.value = rating === null ? 50 : rating;
          $(`value-${k}`).textContent = rating === null ? "--" : String(rating);
        }
      });
      $("next").disabled = !message.complete;
      $("to-rate").textContent = missing ? `${missing} condition${missing === 1 ? "" : "s"} to rate` : "every condition rated: next goes on";
    }
    if (message.status && !message.status[0].startsWith("loop")) rtq.status(message.status[0], message.status[1].includes("red") ? false : null);
    draw();
  });

  rtq.on("waveform", (message) => {
    wave = message;
    $("looping").hidden = message.duration === null;
    draw();
  });
  rtq.on("position", (message) => { position = message.seconds; draw(); });

  /* The waveform, the loop region (shaded, with handles) and the playhead. */
  function draw() {
    if (!wave || wave.duration === null || !state || state.done) return;
    const ratio = window.devicePixelRatio || 1, width = canvas.clientWidth, height = canvas.clientHeight;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const [start, end] = drag ? drag.loop : state.loop;
    const x = (t) => (t / wave.duration) * width;
    g.fillStyle = "rgba(242,193,78,0.18)";
    g.fillRect(x(start), 0, x(end) - x(start), height);
    g.fillStyle = "#4fc3f7";
    const columns = wave.min.length, mid = height / 2;
    for (let k = 0; k < columns; k++) {
      const top = mid - wave.max[k] * mid, bottom = mid - wave.min[k] * mid;
      g.fillRect((k / columns) * width, top, Math.max(width / columns, 1), Math.max(bottom - top, 1));
    }
    g.fillStyle = "#f2c14e";
    for (const t of [start, end]) g.fillRect(x(t) - 2, 0, 4, height);
    if (position !== null) { g.fillStyle = "#ffffff"; g.fillRect(x(position) - 1, 0, 2, height); }
  }
  new ResizeObserver(draw).observe(canvas);

  function timeAt(event) {
    const box = canvas.getBoundingClientRect();
    return Math.min(Math.max((event.clientX - box.left) / box.width, 0), 1) * wave.duration;
  }
  canvas.addEventListener("pointerdown", (event) => {
    if (!wave || !state || state.done) return;
    const box = canvas.getBoundingClientRect(), px = (t) => (t / wave.duration) * box.width + box.left;
    const [start, end] = state.loop, t = timeAt(event);
    let mode = "new";
    if (Math.abs(event.clientX - px(start)) <= HANDLE_PX) mode = "start";
    else if (Math.abs(event.clientX - px(end)) <= HANDLE_PX) mode = "end";
    else if (t > start && t < end) mode = "move";
    drag = { mode, from: t, original: [start, end], loop: [start, end] };
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const t = timeAt(event), [start, end] = drag.original;
    if (drag.mode === "start") drag.loop = [Math.min(t, end), end];
    else if (drag.mode === "end") drag.loop = [start, Math.max(t, start)];
    else if (drag.mode === "move") {
      const shift = Math.min(Math.max(t - drag.from, -start), wave.duration - end);
      drag.loop = [start + shift, end + shift];
    } else drag.loop = [Math.min(drag.from, t), Math.max(drag.from, t)];
    draw();
  });
  canvas.addEventListener("pointerup", () => {
    if (!drag) return;
    const [start, end] = drag.loop.map((v) => Math.round(v * 1000) / 1000);
    const moved = start !== drag.original[0] || end !== drag.original[1];
    drag = null;
    if (moved) send("set_loop", { start, end });
    draw();
  });

  const click = (id, action) => $(id).addEventListener("click", () => send(action));
  click("silence", "silence"); click("pause", "pause");
  click("loop-start", "loop_start"); click("loop-end", "loop_end"); click("loop-reset", "loop_reset");
  click("answer-A", "answer_A"); click("answer-B", "answer_B");
  click("reference", "reference"); click("next", "next");
  $("help-button").addEventListener("click", () => {
    $("help").classList.toggle("shown");
    $("help-button").setAttribute("aria-expanded", String($("help").classList.contains("shown")));
  });

  const SLIDER_KEYS = ["up", "down", "left", "right", "Home", "End", "PageUp", "PageDown"];
  document.addEventListener("keydown", (event) => {
    if (!init || !state || state.done || event.ctrlKey || event.altKey || event.metaKey) return;
    const name = rtq.keyName(event);
    if (event.target.tagName === "INPUT" && SLIDER_KEYS.includes(name)) return;   // the slider's own keys
    if (name === "tab" || name === "shift-tab") return;       // focus moves, as on any page
    if (name === "esc" && $("help").classList.contains("shown")) { $("help-button").click(); return; }
    const found = init.keys.find(([keys]) => keys.includes(name));
    if (!found) return;
    const action = found[1];
    event.preventDefault();
    if (action === "help") { $("help-button").click(); return; }
    if (action === "slot") {
      const slot = name === "0" ? 9 : Number(name) - 1;
      if (slot < init.slots) send("slot", { slot });
    } else if (action === "rate") {
      const current = state.ratings[state.selected];
      const step = { up: 1, down: -1, right: 10, left: -10 }[name];
      const rating = current === null ? init.first_rating : Math.min(Math.max(current + step, 0), 100);
      send("rate", { slot: state.selected, rating });
    } else if (action === "next" && !state.complete) {
      rtq.status("rate every condition before going on", false);
    } else {
      send(action);
    }
  });
  rtq.connect();
})();
