// The live part of a run's page: fetched again every 1.5 s and swapped in place; when the run ends
// (or a starting run gets its row) the whole page reloads to show the completed view. Without
// JavaScript the page refreshes itself (<noscript> meta refresh).
(function () {
  "use strict";
  var box = document.querySelector("[data-live]");
  if (!box) { return; }
  var url = box.getAttribute("data-live");

  function schedule(ms) { window.setTimeout(tick, ms || 1500); }

  function tick() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live-body");
        var current = document.getElementById("live-body");
        if (!fresh || !current) { schedule(5000); return; }
        var was = current.getAttribute("data-state");
        if (fresh.hasAttribute("data-final") || (was === "starting" && fresh.getAttribute("data-state") !== "starting")) {
          window.location.reload();
          return;
        }
        current.replaceWith(document.importNode(fresh, true));
        schedule();
      })
      .catch(function () { schedule(5000); });
  }

  schedule();
}());
