// Live updates of the event timeline: Server-Sent Events from /dashboard/stream (session cookie).
// The browser's EventSource reconnects by itself and sends Last-Event-ID, so nothing is missed or doubled;
// rows already shown (same id) are never added twice.
(function () {
  "use strict";
  var table = document.getElementById("timeline");
  if (!table || !window.EventSource) { return; }
  var tbody = table.tBodies[0];
  var badge = document.getElementById("live-badge");
  var status = document.getElementById("live-status");
  var auth = table.getAttribute("data-authorisation") || "";
  var params = [];
  if (auth) { params.push("authorisation_id=" + encodeURIComponent(auth)); }
  var last = table.getAttribute("data-last-id");
  if (last) { params.push("last_event_id=" + encodeURIComponent(last)); }
  var url = "/dashboard/stream" + (params.length ? "?" + params.join("&") : "");

  function cell(text) { var td = document.createElement("td"); td.textContent = text == null ? "" : String(text); return td; }

  function addRow(item) {
    if (tbody.querySelector('tr[data-id="' + CSS.escape(item.id) + '"]')) { return; }
    var empty = tbody.querySelector("tr.empty");
    if (empty) { empty.remove(); }
    var tr = document.createElement("tr");
    tr.setAttribute("data-id", item.id);
    tr.className = "new";
    tr.appendChild(cell((item.recorded_at || "").slice(0, 19).replace("T", " ")));
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
    if (status) { status.textContent = "New event: " + item.event_type + " " + (item.event_id || ""); }
  }

  var source = new EventSource(url);
  source.addEventListener("open", function () { if (badge) { badge.textContent = "live"; badge.className = "live-badge on"; } });
  source.addEventListener("error", function () {
    if (!badge) { return; }
    badge.className = "live-badge";
    // CLOSED: the browser gave up (e.g. 401 after the session ended or the key was revoked) and will not retry
    badge.textContent = source.readyState === EventSource.CLOSED ? "live updates stopped: reload the page"
                                                                 : "reconnecting…";
  });
  source.addEventListener("ledger-event", function (e) {
    try { addRow(JSON.parse(e.data)); } catch (err) { /* ignore a malformed message */ }
  });
})();
