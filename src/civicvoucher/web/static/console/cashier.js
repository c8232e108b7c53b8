// The cashier's page (/c): scan a voucher's QR code with the camera where the browser can
// (BarcodeDetector and getUserMedia); otherwise the typed field is all there is. The confirm
// form carries the server's attempt key (a hidden field), so a double tap or a resend
// replays the same receipt; console.js disables its button while the request is out.
(function () {
  "use strict";
  var box = document.getElementById("scan");
  var input = document.getElementById("voucher");
  var form = document.getElementById("entry-form");
  if (!box || !input || !form) return;
  if (!("BarcodeDetector" in window) || !navigator.mediaDevices ||
      !navigator.mediaDevices.getUserMedia) return;  // no camera scanning: type the code

  var button = document.getElementById("scan-button");
  var video = document.getElementById("scan-video");
  var status = document.getElementById("scan-status");
  var stream = null, timer = null, detector = null;

  function stop() {
    if (timer) { clearTimeout(timer); timer = null; }
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); stream = null; }
    video.hidden = true;
    button.textContent = box.dataset.start;
  }

  function found(text) {
    stop();
    input.value = text;
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
  }

  function tick() {
    detector.detect(video).then(function (codes) {
      if (codes.length && codes[0].rawValue) return found(codes[0].rawValue);
      if (stream) timer = setTimeout(tick, 250);
    }).catch(function () { if (stream) timer = setTimeout(tick, 500); });
  }

  function start() {
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then(function (s) {
        stream = s;
        video.srcObject = s;
        video.hidden = false;
        button.textContent = box.dataset.stop;
        status.textContent = "";
        return video.play();
      })
      .then(function () { tick(); })
      .catch(function () { stop(); status.textContent = box.dataset.denied; input.focus(); });
  }

  Promise.resolve(BarcodeDetector.getSupportedFormats ? BarcodeDetector.getSupportedFormats()
                                                      : ["qr_code"])
    .then(function (formats) {
      if (formats.indexOf("qr_code") < 0) return;
      detector = new BarcodeDetector({ formats: ["qr_code"] });
      box.hidden = false;
      button.addEventListener("click", function () { if (stream) stop(); else start(); });
      window.addEventListener("pagehide", stop);
    })
    .catch(function () { /* no detector after all: the typed field stays */ });
})();
