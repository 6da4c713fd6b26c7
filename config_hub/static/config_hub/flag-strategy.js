// The flag state editor: show the fields of the chosen strategy type only
// (rollout, stickiness and group id for a gradual rollout; user ids for specific users;
// constraints for all but raw JSON). Without JavaScript every field shows, and the
// server uses the ones of the chosen type.
(function () {
  "use strict";
  var FIELDS = {
    "default": ["constraints"],
    "flexibleRollout": ["rollout", "stickiness", "group_id", "constraints"],
    "userWithId": ["user_ids", "constraints"],
    "json": []
  };
  var ALL = ["rollout", "stickiness", "group_id", "user_ids", "constraints"];
  function update(select) {
    var box = select.closest(".inline-related") || document;
    var shown = FIELDS[select.value] || [];
    ALL.forEach(function (name) {
      box.querySelectorAll(".form-row.field-" + name).forEach(function (row) {
        row.style.display = shown.indexOf(name) >= 0 ? "" : "none";
      });
    });
  }
  function init(root) {
    (root || document).querySelectorAll("select.strategy-type").forEach(function (select) {
      if (select.dataset.strategyType) return;
      select.dataset.strategyType = "1";
      select.addEventListener("change", function () { update(select); });
      update(select);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { init(); });
  document.addEventListener("formset:added", function (event) { init(event.target); });
})();
