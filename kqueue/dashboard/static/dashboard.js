// Live refresh: every element with data-live="URL" data-every="SECONDS" is replaced by the
// HTML fragment at URL every SECONDS. The fragment is rendered and escaped by the server;
// the page's Content-Security-Policy allows no inline script either way.
"use strict";
document.querySelectorAll("[data-live]").forEach(function (box) {
  var every = Number(box.dataset.every) * 1000;
  if (!(every > 0)) { return; }
  setInterval(function () {
    fetch(box.dataset.live, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        box.innerHTML = html;
        box.classList.remove("stale");
        box.dataset.refreshes = String(Number(box.dataset.refreshes || 0) + 1);
      })
      .catch(function () { box.classList.add("stale"); });
  }, every);
});
