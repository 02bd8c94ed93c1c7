/* lembench report: progressive enhancement only. Without this script every page is complete;
   with it, table headers become sort buttons and the leaderboard gets filters.
   No network access, no inline handlers, no HTML built from data (textContent only). */
(function () {
  "use strict";

  function sortValue(cell, numeric) {
    if (!cell) return null;
    if (numeric) {
      var v = cell.getAttribute("data-v");
      if (v === null || v === "") return null;
      var n = parseFloat(v);
      return isNaN(n) ? null : n;
    }
    return cell.textContent.trim().toLowerCase();
  }

  function sortTable(table, index, th) {
    var numeric = th.getAttribute("data-kind") === "num";
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    var headers = table.tHead.rows[0].cells;
    for (var i = 0; i < headers.length; i++) headers[i].removeAttribute("aria-sort");
    th.setAttribute("aria-sort", dir);
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var sign = dir === "ascending" ? 1 : -1;
    rows.sort(function (a, b) {
      var x = sortValue(a.cells[index], numeric), y = sortValue(b.cells[index], numeric);
      if (x === null && y === null) return 0;
      if (x === null) return 1;   /* missing values last, whichever the direction */
      if (y === null) return -1;
      if (x < y) return -sign;
      if (x > y) return sign;
      return 0;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }

  function makeSortable(table) {
    if (!table.tHead || !table.tBodies.length) return;
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, index) {
      var button = document.createElement("button");
      button.type = "button";
      while (th.firstChild) button.appendChild(th.firstChild);
      th.appendChild(button);
      button.addEventListener("click", function () { sortTable(table, index, th); });
    });
  }

  function setUpFilters(form) {
    var selects = form.querySelectorAll("select[data-filter]");
    var rows = document.querySelectorAll("table.leaderboard tbody tr");
    var status = document.getElementById("filter-status");
    function apply() {
      var shown = 0;
      Array.prototype.forEach.call(rows, function (row) {
        var ok = true;
        Array.prototype.forEach.call(selects, function (s) {
          if (s.value !== "" && row.getAttribute("data-" + s.getAttribute("data-filter")) !== s.value) ok = false;
        });
        row.hidden = !ok;
        if (ok) shown++;
      });
      if (status) status.textContent = "Showing " + shown + " of " + rows.length + " experiments on this page";
    }
    form.addEventListener("change", apply);
    form.addEventListener("reset", function () { window.setTimeout(apply, 0); });
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    form.hidden = false;
    apply();
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), makeSortable);
    var form = document.getElementById("filters");
    if (form) setUpFilters(form);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
