/* The WebSocket of an rtq page: updates in by topic, actions out, replies shown.
   The token comes from the page's own address (the one rtq printed). */
"use strict";
const rtq = (() => {
  const token = new URLSearchParams(location.search).get("token") || "";
  const handlers = {};
  let socket = null, nextId = 1, over = false;
  const stats = { updates: 0, replies: [] };        // read by the tests and tools/bench_web.py
  window.rtqStats = stats;

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function status(text, ok) {
    const line = $("status");
    if (!line) return;
    line.textContent = text || "";
    line.className = ok === false ? "bad" : (ok ? "ok" : "");
  }

  function connection(up, text) {
    const mark = $("connection");
    if (!mark) return;
    mark.textContent = text || (up ? "connected" : "not connected: retrying…");
    mark.className = up ? "dim" : "down";
  }

  function on(topic, handler) { (handlers[topic] = handlers[topic] || []).push(handler); }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}/ws?token=${encodeURIComponent(token)}`);
    socket.onopen = () => connection(true);
    socket.onclose = () => {
      if (over) return;
      connection(false);
      setTimeout(connect, 1000);
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.topic === "reply") {
        stats.replies.push(message);
        if (stats.replies.length > 200) stats.replies.shift();
        status(message.message === "ok" ? "" : message.message, message.ok ? null : false);
      } else if (message.topic === "closed") {
        over = true;
        connection(false, message.message);
        status(message.message, false);
      } else {
        stats.updates += 1;                          // what the server sent to show (not replies)
      }
      for (const handler of handlers[message.topic] || []) handler(message);
    };
  }

  function send(action, args) {
    if (!socket || socket.readyState !== WebSocket.OPEN) { status("not connected", false); return null; }
    const id = nextId++;
    socket.send(JSON.stringify(Object.assign({ action, id }, args || {})));
    return id;
  }

  /* The key names of rtq's terminal (rtq.ui.keys) for a keydown event. */
  function keyName(event) {
    const names = { " ": "space", ArrowUp: "up", ArrowDown: "down", ArrowLeft: "left", ArrowRight: "right",
                    Enter: "enter", Escape: "esc", Backspace: "backspace" };
    if (event.key === "Tab") return event.shiftKey ? "shift-tab" : "tab";
    return names[event.key] || event.key;
  }

  function help(keys) {
    const list = $("help-list");
    if (!list) return;
    list.replaceChildren();
    for (const [names, , text] of keys) {
      list.append(el("dt", { text: names.join("  ") }), el("dd", { text }));
    }
  }

  function finish() { over = true; }

  return { $, el, on, send, status, connect, keyName, help, finish, stats };
})();
