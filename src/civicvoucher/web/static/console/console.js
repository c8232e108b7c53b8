// civicvoucher console: small behaviours HTMX does not cover. No inline scripts (the CSP
// allows only this origin's files).
(function () {
  "use strict";
  // A form that moves money is sent once: its button is disabled while the request is out,
  // and every attempt carries the same idempotency key (a retry after a flaky network
  // replays the first answer instead of doing it twice).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var key = form.querySelector("input[name=idempotency_key]");
    if (key && !key.value && window.crypto && crypto.randomUUID) key.value = crypto.randomUUID();
    var button = form.querySelector("button[type=submit]");
    if (button && form.dataset.once !== undefined) {
      setTimeout(function () { button.disabled = true; }, 0);
    }
  }, true);
  // The file field drawn in the page's language (console.css .file-pick) shows what was picked.
  document.addEventListener("change", function (event) {
    var input = event.target;
    var pick = input.closest && input.closest(".file-pick");
    var shown = pick && pick.querySelector(".file-name");
    if (!shown || input.type !== "file") return;
    shown.textContent = input.files && input.files.length ? input.files[0].name : shown.dataset.none;
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.target.closest && event.target.closest("form[data-once]");
    if (form) {
      var button = form.querySelector("button[type=submit]");
      if (button) button.disabled = false;
    }
  });
})();
