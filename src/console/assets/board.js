// kefu live board: renders the state pushed on /board/stream (server-sent events).
// Every text goes in through textContent, never as HTML. Countdowns run here between
// updates at the engine's pace (state.speed: faster than real time in the demo).
"use strict";
(function () {
  let state = null;
  let receivedAt = 0;
  const $ = (sel) => document.querySelector(sel);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function engineNow() {
    if (!state) return 0;
    return state.now + (performance.now() - receivedAt) * state.speed;
  }

  // Asia/Shanghai is UTC+8 all year.
  function shanghaiDay(ms) {
    return new Date(ms + 8 * 3600000).toISOString().slice(0, 10);
  }

  function clock(ms) {
    return new Date(ms + 8 * 3600000).toISOString().slice(11, 19);
  }

  function secs(ms) {
    if (ms === null || ms === undefined) return "—";
    const s = Math.round(ms / 1000);
    if (Math.abs(s) < 120) return s + " s";
    const m = Math.floor(Math.abs(s) / 60);
    return (s < 0 ? "-" : "") + m + " min " + String(Math.abs(s) % 60).padStart(2, "0") + " s";
  }

  function link(conversation, at) {
    const a = el("a", null, conversation);
    a.href = "/c/" + encodeURIComponent(conversation) + "?day=" + shanghaiDay(at);
    return a;
  }

  function row(cells) {
    const tr = el("tr");
    for (const c of cells) {
      const td = el("td");
      if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? "—" : String(c);
      tr.appendChild(td);
    }
    return tr;
  }

  function renderWaiting() {
    const body = $("#waiting tbody");
    body.replaceChildren();
    for (const w of state.waiting) {
      const left = el("span", "countdown");
      const buyer = link(w.conversation, w.start);
      buyer.textContent = w.buyer;
      const tr = row([left, buyer, w.agent, w.load, secs(w.deadline_ms), w.preview, w.shop]);
      tr.dataset.conversation = w.conversation;
      tr._wait = w;
      body.appendChild(tr);
    }
    const more = state.waiting_total - state.waiting.length;
    $("#waiting-total").textContent = "(" + state.waiting_total + (more > 0 ? ", " + more + " not listed" : "") + ")";
  }

  function tick() {
    if (!state) return;
    const now = engineNow();
    for (const tr of document.querySelectorAll("#waiting tbody tr")) {
      const w = tr._wait;
      const late = w.breached || now > w.due_at;
      const escalated = w.escalated || (w.escalate_at !== null && now > w.escalate_at);
      tr.classList.toggle("breach", late);
      tr.classList.toggle("warn", !late && now >= w.warn_at);
      tr.classList.toggle("escalated", escalated);
      tr.firstChild.firstChild.textContent = late ? "超时 +" + secs(now - w.due_at) : secs(w.due_at - now);
    }
    for (const td of document.querySelectorAll("#agents td[data-since]")) {
      td.textContent = secs(now - Number(td.dataset.since));
    }
  }

  function renderAgents() {
    const body = $("#agents tbody");
    body.replaceChildren();
    for (const a of state.agents) {
      const pct = a.within_3min_pct === null ? null : a.within_3min_pct + " %";
      const since = el("span", null, "—");
      const name = el("a", null, a.agent);
      name.href = "/agent/" + encodeURIComponent(a.agent) + "?day=" + (state.day || "");
      const tr = row([name, el("span", "presence " + a.status, a.status), a.load, a.deadline_ms ? secs(a.deadline_ms) : null,
        a.waiting, a.served, a.answered, a.breaches, secs(a.avg_response_ms), secs(a.avg_first_ms), pct, since, a.findings]);
      if (a.last_reply !== null) since.parentNode.dataset.since = a.last_reply;
      tr.dataset.agent = a.agent;
      body.appendChild(tr);
    }
  }

  function renderShops() {
    const cards = $("#shops .cards");
    if (!cards) return;
    cards.replaceChildren();
    for (const s of state.shops) {
      const card = el("div", "card");
      card.appendChild(el("h3", null, s.shop));
      const dl = el("dl");
      const facts = [
        ["等待 Waiting", s.waiting],
        ["最长等待 Longest", s.longest_since === null ? "—" : secs(state.now - s.longest_since)],
        ["按时回复 On time", s.on_time_pct === null ? "—" : s.on_time_pct + " %"],
        ["超时 Breaches", s.breaches],
        ["未回复 Unanswered", s.unanswered],
        ["机器人 Robot", s.robot],
        ["违规 Findings", s.findings],
      ];
      for (const [k, v] of facts) {
        dl.appendChild(el("dt", null, k));
        dl.appendChild(el("dd", null, v));
      }
      card.appendChild(dl);
      const chart = el("div", "chart");
      chart.title = "超时/小时 breaches by hour";
      const max = Math.max(1, ...s.breaches_by_hour);
      s.breaches_by_hour.forEach((n, h) => {
        const bar = el("span", "bar");
        bar.style.height = Math.round((n / max) * 100) + "%";
        bar.title = h + ":00 — " + n;
        chart.appendChild(bar);
      });
      card.appendChild(chart);
      cards.appendChild(card);
    }
  }

  function renderAlerts() {
    const list = $("#alerts");
    list.replaceChildren();
    for (const a of state.alerts) {
      const li = el("li", "alert " + a.kind);
      li.appendChild(el("span", "ts", clock(a.at)));
      li.appendChild(el("strong", null, a.title));
      li.appendChild(el("pre", null, a.text));
      if (a.conversation) li.appendChild(link(a.conversation, a.at));
      list.appendChild(li);
    }
  }

  function renderFindings() {
    const list = $("#findings");
    list.replaceChildren();
    for (const f of state.findings) {
      const li = el("li", "finding " + f.severity);
      li.appendChild(el("span", "ts", clock(f.at)));
      li.appendChild(el("strong", null, f.agent + " · " + f.category + " (" + f.points + ")"));
      li.appendChild(el("q", null, f.matched));
      li.appendChild(document.createTextNode(" "));
      li.appendChild(link(f.conversation, f.at));
      list.appendChild(li);
    }
  }

  function render() {
    document.body.dataset.version = state.version;
    renderWaiting();
    renderAgents();
    renderShops();
    renderAlerts();
    renderFindings();
    tick();
  }

  function connect() {
    const status = $("#status");
    const source = new EventSource("/board/stream");
    source.addEventListener("board", (e) => {
      state = JSON.parse(e.data);
      receivedAt = performance.now();
      status.dataset.connected = "true";
      status.textContent = "实时 live · " + (state.day || "");
      render();
    });
    source.onerror = () => {
      status.dataset.connected = "false";
      status.textContent = "连接中断，重连中 reconnecting…";
    };
  }

  connect();
  setInterval(tick, 200);
})();
