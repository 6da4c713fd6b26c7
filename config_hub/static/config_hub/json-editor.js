// A small offline JSON editor for the admin: live syntax check, pretty-print, tab indent.
(function () {
  "use strict";
  function enhance(area) {
    if (area.dataset.jsonEditor) return;
    area.dataset.jsonEditor = "1";
    area.style.fontFamily = "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace";
    area.spellcheck = false;
    var bar = document.createElement("div");
    bar.className = "json-editor-bar";
    var status = document.createElement("span");
    status.className = "json-editor-status";
    var format = document.createElement("button");
    format.type = "button";
    format.className = "button json-editor-format";
    format.textContent = "Format JSON";
    bar.appendChild(format);
    bar.appendChild(status);
    area.parentNode.insertBefore(bar, area.nextSibling);
    function check() {
      var text = area.value.trim();
      if (text === "" || text === "••••••••") { status.textContent = ""; return; }
      try {
        JSON.parse(text);
        status.textContent = " ✓ valid JSON";
        status.style.color = "#2e7d32";
        area.style.outline = "";
      } catch (e) {
        status.textContent = " ✗ " + e.message;
        status.style.color = "#c62828";
        area.style.outline = "2px solid #c62828";
      }
    }
    format.addEventListener("click", function () {
      try { area.value = JSON.stringify(JSON.parse(area.value), null, 2); } catch (e) { /* leave as typed */ }
      check();
    });
    area.addEventListener("input", check);
    area.addEventListener("keydown", function (ev) {
      if (ev.key === "Tab") {
        ev.preventDefault();
        var s = area.selectionStart;
        area.value = area.value.slice(0, s) + "  " + area.value.slice(area.selectionEnd);
        area.selectionStart = area.selectionEnd = s + 2;
      }
    });
    check();
  }
  function init() { document.querySelectorAll("textarea.json-editor").forEach(enhance); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
