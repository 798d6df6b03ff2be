// robot-rl web teleop page: joystick (x/y) + slider (z), hold-to-drive clutch, success/failure,
// live state. Protocol: see robot_rl/teleop/web.py. `window.teleop` exposes the page state
// (tests and benchmarks read it).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const T = {
    ws: null, role: "none", offset: 0, bestRtt: Infinity, axes: [0, 0, 0], clutch: false, seq: 0,
    events: [], te: 0, lastSent: -Infinity, sendHz: 50, idleHz: 5, timer: null, sent: 0, state: null,
  };
  window.teleop = T;

  // the page's estimate of the server's monotonic clock (seconds) at a performance.now() time (ms)
  const serverTime = (perfMs) => perfMs / 1000 + T.offset;

  function message(text) { $("msg").textContent = text || ""; }

  function setRole(role, text) {
    T.role = role;
    $("role").textContent = role === "control" ? "you drive" : role === "view" ? "view only" : "-";
    $("role").className = "badge " + (role === "control" ? "good" : "warn");
    for (const id of ["clutch", "success", "failure"]) $(id).disabled = role !== "control";
    if (role !== "control") release();
    if (text) message(text);
  }

  function send(obj) {
    if (T.ws && T.ws.readyState === WebSocket.OPEN) { T.ws.send(JSON.stringify(obj)); return true; }
    return false;
  }

  function sendCommand() {
    if (T.role !== "control") return;
    const now = performance.now();
    const cmd = { type: "cmd", seq: ++T.seq, t: serverTime(now), te: T.te || serverTime(now),
                  clutch: T.clutch, axes: T.axes.map((a) => Math.round(a * 1e4) / 1e4),
                  events: T.events.splice(0) };
    if (send(cmd)) { T.lastSent = now; T.sent++; T.lastCmd = cmd; }
  }

  function tick() {  // steady rate: send_hz while the clutch is held, idle_hz heartbeats otherwise
    const period = 1000 / (T.clutch ? T.sendHz : T.idleHz);
    if (T.clutch || T.events.length || performance.now() - T.lastSent >= period - 1) sendCommand();
  }

  function ping() { send({ type: "ping", t: performance.now() / 1000 }); }

  function onMessage(ev) {
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    if (m.type === "welcome") {
      T.sendHz = m.send_hz; T.idleHz = m.idle_hz;
      $("scale").textContent = `full stick = ${m.scale.linear_m_s} m/s`;
      setRole(m.role, m.message);
      clearInterval(T.timer);
      T.timer = setInterval(tick, 1000 / T.sendHz);
    } else if (m.type === "role") {
      setRole(m.role, m.message);
    } else if (m.type === "pong") {
      const rtt = performance.now() / 1000 - m.t;
      if (rtt < T.bestRtt) { T.bestRtt = rtt; T.offset = m.server - (m.t + rtt / 2); }
    } else if (m.type === "state") {
      T.state = m.state; render(m.state);
    } else if (m.type === "error") {
      message(m.message);
    }
  }

  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    T.ws = ws; T.bestRtt = Infinity;
    ws.onopen = () => {
      $("conn").textContent = "connected"; $("conn").className = "badge good";
      for (let i = 0; i < 10; i++) setTimeout(ping, 40 * i);  // the best round trip sets the clock offset
    };
    ws.onmessage = onMessage;
    ws.onclose = () => {
      $("conn").textContent = "disconnected"; $("conn").className = "badge bad";
      clearInterval(T.timer); setRole("none"); setTimeout(connect, 1000);
    };
  }
  setInterval(ping, 2000);

  // ---- input --------------------------------------------------------------------------------
  const KNOB = 28;  // knob radius (px), see style.css
  function pad(el, knob, axesIdx) {  // axesIdx: [ix, iy] (x/y stick) or [null, 2] (z slider)
    let id = null;
    const move = (ev) => {
      const r = el.getBoundingClientRect();
      const tx = Math.max(r.width / 2 - KNOB, 1), ty = Math.max(r.height / 2 - KNOB, 1);  // travel (px)
      let dx = axesIdx[0] === null ? 0 : (ev.clientX - r.left - r.width / 2) / tx;
      let dy = -(ev.clientY - r.top - r.height / 2) / ty;
      const n = Math.hypot(dx, dy);
      if (n > 1) { dx /= n; dy /= n; }
      if (axesIdx[0] !== null) T.axes[axesIdx[0]] = dx;
      T.axes[axesIdx[1]] = dy;
      T.te = serverTime(ev.timeStamp);
      knob.style.transform = `translate(${axesIdx[0] === null ? 0 : dx * tx}px, ${-dy * ty}px)`;
    };
    const end = () => {
      id = null;
      if (axesIdx[0] !== null) T.axes[axesIdx[0]] = 0;
      T.axes[axesIdx[1]] = 0;
      knob.style.transform = "";
    };
    el.addEventListener("pointerdown", (ev) => { id = ev.pointerId; el.setPointerCapture(id); move(ev); ev.preventDefault(); });
    el.addEventListener("pointermove", (ev) => { if (ev.pointerId === id) move(ev); });
    for (const t of ["pointerup", "pointercancel", "lostpointercapture"]) {
      el.addEventListener(t, (ev) => { if (ev.pointerId === id) end(); });
    }
    return end;
  }
  const endStick = pad($("stick"), $("knob"), [0, 1]);
  const endZ = pad($("zpad"), $("zknob"), [null, 2]);

  function hold() {
    if (T.role !== "control" || T.clutch) return;
    T.clutch = true; $("clutch").classList.add("held"); sendCommand();
  }
  function release() {
    if (!T.clutch) return;
    T.clutch = false; $("clutch").classList.remove("held"); sendCommand();
  }
  function releaseAll() { endStick(); endZ(); release(); }
  const clutch = $("clutch");
  clutch.addEventListener("pointerdown", (ev) => { clutch.setPointerCapture(ev.pointerId); hold(); ev.preventDefault(); });
  for (const t of ["pointerup", "pointercancel", "lostpointercapture"]) clutch.addEventListener(t, release);
  window.addEventListener("blur", releaseAll);
  window.addEventListener("pagehide", releaseAll);
  document.addEventListener("visibilitychange", () => { if (document.hidden) releaseAll(); });
  document.addEventListener("contextmenu", (ev) => ev.preventDefault());
  window.addEventListener("keydown", (ev) => { if (ev.code === "Space" && !ev.repeat) { hold(); ev.preventDefault(); } });
  window.addEventListener("keyup", (ev) => { if (ev.code === "Space") release(); });
  for (const name of ["success", "failure"]) {
    $(name).addEventListener("click", () => { T.events.push(name); sendCommand(); message(name + " sent"); });
  }

  // ---- live state ---------------------------------------------------------------------------
  const KNOWN = ["source", "intervening", "device_alive", "interventions", "episode", "success_rate",
                 "last_event", "joint_names", "joint_positions", "stamp"];
  function fmt(v) {
    if (v === null || v === undefined) return "-";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3);
    if (typeof v === "boolean") return v ? "yes" : "no";
    return String(v);
  }
  function render(s) {
    for (const k of KNOWN.slice(0, 7)) {
      if (!(k in s)) continue;
      const el = $("s-" + k);
      el.textContent = k === "success_rate" && typeof s[k] === "number" ? (100 * s[k]).toFixed(0) + " %" : fmt(s[k]);
      if (k === "source") el.className = "badge " + ({ person: "warn", policy: "good", hold: "bad" }[s[k]] || "");
      if (k === "device_alive") el.className = "badge " + (s[k] ? "good" : "bad");
    }
    const extra = $("extra"); extra.replaceChildren();
    for (const [k, v] of Object.entries(s)) {
      if (KNOWN.includes(k) || (v !== null && typeof v === "object")) continue;
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = fmt(v);
      extra.append(dt, dd);
    }
    let q = s.joint_positions, names = s.joint_names;
    if (q && !Array.isArray(q) && typeof q === "object") { names = Object.keys(q); q = Object.values(q); }
    if (Array.isArray(q)) {
      const body = $("joints").tBodies[0]; body.replaceChildren();
      q.forEach((v, i) => {
        const tr = document.createElement("tr");
        const a = document.createElement("td"); a.textContent = names && names[i] !== undefined ? names[i] : "joint " + (i + 1);
        const b = document.createElement("td"); b.textContent = fmt(v);
        tr.append(a, b); body.append(tr);
      });
    }
  }

  setRole("none");
  connect();
})();
