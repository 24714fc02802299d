// The dashboard works without this file; it adds the live batch progress
// (server-sent events), the account inquiry's progress, and selects a shown-once secret on focus.
(function () {
  "use strict";
  document.querySelectorAll("[data-select]").forEach(function (el) {
    el.addEventListener("focus", function () { el.select(); });
  });
  // A bulk account inquiry's page follows its job until it completes.
  var inquiry = document.getElementById("inquiry");
  if (inquiry && inquiry.dataset.done !== "true") {
    setTimeout(function () { location.reload(); }, 1000);
  }
  var batch = document.getElementById("batch");
  if (!batch || batch.dataset.done === "true" || !window.EventSource) {
    return;
  }
  var set = function (id, v) { var el = document.getElementById(id); if (el) { el.textContent = String(v); } };
  var src = new EventSource("/batches/" + encodeURIComponent(batch.dataset.batch) + "/progress");
  var update = function (e) {
    var p = JSON.parse(e.data);
    var bar = document.getElementById("bar");
    bar.max = p.items;
    bar.value = p.finished;
    set("percent", p.percent + "%");
    set("finished", p.finished);
    set("items", p.items);
    set("completed", p.completed);
    set("failed", p.failed);
    set("batch-status", p.status);
    if (p.done) {
      batch.dataset.done = "true";
      src.close();
    }
  };
  src.addEventListener("progress", update);
  src.addEventListener("done", update);
})();
