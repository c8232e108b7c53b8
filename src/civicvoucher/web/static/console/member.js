// The member's payment QR (/m/vouchers/<id>): the image is swapped for a fresh one a few
// seconds before its code expires (the period is the server's qr_period_s, on the image's
// data-period), with a cache-busting query. The visible countdown is hidden from screen
// readers; the polite status line speaks only when a new code is shown.
(function () {
  "use strict";
  var img = document.getElementById("qr");
  if (!img) return;
  var left = document.getElementById("qr-left");
  var status = document.getElementById("qr-status");
  var period = parseInt(img.dataset.period, 10) || 30;
  var refreshAfter = parseInt(img.dataset.refreshAfter, 10) || Math.max(1, period - 5);
  var base = img.dataset.src;
  var loadedAt = Date.now();
  var first = true;
  var n = 0;
  var timer = null;

  function say(el, template, seconds) {
    if (el && template) el.textContent = template.replace("__N__", String(seconds));
  }

  function tick() {
    var elapsed = (Date.now() - loadedAt) / 1000;
    var until = Math.max(0, Math.ceil(refreshAfter - elapsed));
    say(left, left && left.dataset.template, until);
    if (elapsed >= refreshAfter) refresh();
  }

  function refresh() {
    n += 1;
    loadedAt = Date.now();  // until the new image answers, do not ask again
    img.src = base + (base.indexOf("?") < 0 ? "?" : "&") + "n=" + n + "-" + Date.now();
  }

  img.addEventListener("load", function () {
    loadedAt = Date.now();
    img.dataset.generation = String(n);
    if (!first) say(status, status && status.dataset.template, period);
    first = false;
  });
  img.addEventListener("error", function () {
    if (status && status.dataset.failed) status.textContent = status.dataset.failed;
    if (timer) clearInterval(timer);
  });
  if (img.complete && img.naturalWidth) first = false;
  timer = setInterval(tick, 1000);
  tick();
})();
