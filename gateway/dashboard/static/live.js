// Live updates of the event timeline: Server-Sent Events from /dashboard/stream (session cookie).
// The browser's EventSource reconnects by itself and sends Last-Event-ID, so nothing is missed or doubled;
// rows already shown (same id) are never added twice. Accessibility (WCAG 2.2.2, 4.1.3, 1.4.1): the updates can be
// paused (the rows wait, counted, and come on resuming); a new row says "New" in words, not by colour alone; the
// table keeps its latest MAX_ROWS rows; what changes is told in the status region, new events grouped (at most one
// message every ANNOUNCE_MS), the stream's state too, and focus is never moved.
(function () {
  "use strict";
  var table = document.getElementById("timeline");
  if (!table || !window.EventSource) { return; }
  var tbody = table.tBodies[0];
  var badge = document.getElementById("live-badge");
  var status = document.getElementById("live-status");
  var toggle = document.getElementById("live-toggle");
  var MAX_ROWS = 200, ANNOUNCE_MS = 5000;
  var paused = false, waiting = [], unannounced = 0, announceTimer = null;

  function announce(text) { if (status) { status.textContent = text; } }

  function announceNew() {   // new events, grouped: one message for a burst
    if (announceTimer) { return; }
    announceTimer = setTimeout(function () {
      announceTimer = null;
      if (unannounced) { announce(unannounced === 1 ? "1 new event" : unannounced + " new events"); unannounced = 0; }
    }, ANNOUNCE_MS);
  }

  function setBadge(text, on) {
    if (!badge) { return; }
    badge.textContent = text;
    badge.className = on ? "live-badge on" : "live-badge";
  }

  if (toggle) {
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      paused = !paused;
      toggle.setAttribute("aria-pressed", paused ? "true" : "false");
      toggle.textContent = paused ? "Resume live updates" : "Pause live updates";
      if (!paused) {
        var queued = waiting; waiting = [];
        queued.forEach(addRow);
        setBadge("live", true);
      } else {
        setBadge("live updates paused", false);
      }
    });
  }
  var auth = table.getAttribute("data-authorisation") || "";
  var params = [];
  if (auth) { params.push("authorisation_id=" + encodeURIComponent(auth)); }
  var last = table.getAttribute("data-last-id");
  if (last) { params.push("last_event_id=" + encodeURIComponent(last)); }
  var url = "/dashboard/stream" + (params.length ? "?" + params.join("&") : "");

  function cell(text) { var td = document.createElement("td"); td.textContent = text == null ? "" : String(text); return td; }

  function receive(item) {
    if (paused) {
      if (!waiting.some(function (w) { return w.id === item.id; })) { waiting.push(item); }
      setBadge("live updates paused: " + waiting.length + (waiting.length === 1 ? " new event waits" : " new events wait"), false);
      return;
    }
    addRow(item);
  }

  function addRow(item) {
    if (tbody.querySelector('tr[data-id="' + CSS.escape(item.id) + '"]')) { return; }
    var empty = tbody.querySelector("tr.empty");
    if (empty) { empty.remove(); }
    var tr = document.createElement("tr");
    tr.setAttribute("data-id", item.id);
    tr.className = "new";
    var when = cell((item.recorded_at || "").slice(0, 19).replace("T", " "));
    var mark = document.createElement("strong"); mark.className = "tag-new"; mark.textContent = "New ";
    when.insertBefore(mark, when.firstChild);
    tr.appendChild(when);
    tr.appendChild(cell(item.block_number));
    var ev = cell(item.event_type + " ");
    var span = document.createElement("span"); span.className = "muted"; span.textContent = item.event_id || "";
    ev.appendChild(span); tr.appendChild(ev);
    var at = document.createElement("td");
    if (item.authorisation_id) {
      var a = document.createElement("a");
      a.href = "/dashboard/authorisations/" + encodeURIComponent(item.authorisation_id);
      a.textContent = item.authorisation_id; at.appendChild(a);
    }
    tr.appendChild(at);
    var goods = document.createElement("td");   // each lot and batch linked to its page, as the server's rows
    var named = (item.lots || []).map(function (id) { return ["lots", id]; })
      .concat((item.batches || []).map(function (id) { return ["batches", id]; }));
    named.forEach(function (g, i) {
      if (i) { goods.appendChild(document.createTextNode(", ")); }
      var link = document.createElement("a");   // the id as one path segment ('/' as %2F), on the item's channel
      link.href = "/dashboard/" + g[0] + "/" + encodeURIComponent(g[1]) +
        (item.channel ? "?channel=" + encodeURIComponent(item.channel) : "");
      link.textContent = g[1]; goods.appendChild(link);
    });
    tr.appendChild(goods);
    tr.appendChild(cell(item.submitting_org));
    tr.appendChild(cell((item.alerts || []).map(function (x) { return x.change + " " + x.type; }).join("; ")));
    tbody.insertBefore(tr, tbody.firstChild);
    while (tbody.rows.length > MAX_ROWS) { tbody.deleteRow(tbody.rows.length - 1); }
    unannounced += 1;
    announceNew();
  }

  var source = new EventSource(url);
  source.addEventListener("open", function () { if (!paused) { setBadge("live", true); } });
  source.addEventListener("error", function () {
    // CLOSED: the browser gave up (e.g. 401 after the session ended or the key was revoked) and will not retry
    var text = source.readyState === EventSource.CLOSED ? "live updates stopped: reload the page" : "reconnecting…";
    setBadge(text, false);
    announce(text);
  });
  source.addEventListener("ledger-event", function (e) {
    var item;
    try { item = JSON.parse(e.data); } catch (err) { return; }   // a malformed message: ignored
    receive(item);
  });
})();
