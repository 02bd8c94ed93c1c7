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

  /* Filters: the group (hardware x task) select, a text search and one select per column filter.
     Ranks and ratings compare rows of one group only: the all-rows view hides them. */
  function setUpFilters(form) {
    var selects = form.querySelectorAll("select[data-filter]");
    var search = form.querySelector("input[data-search]");
    var group = form.querySelector("select[data-filter=group]");
    var rows = document.querySelectorAll("table.leaderboard tbody tr");
    var summaries = document.querySelectorAll("table.group-summary tbody tr");
    var figures = document.querySelectorAll("figure.group-chart");
    var status = document.getElementById("filter-status");
    var texts = Array.prototype.map.call(rows, function (row) { return row.textContent.toLowerCase(); });
    function apply() {
      var shown = 0;
      var needle = search ? search.value.trim().toLowerCase() : "";
      Array.prototype.forEach.call(rows, function (row, i) {
        var ok = true;
        Array.prototype.forEach.call(selects, function (s) {
          if (s.value !== "" && row.getAttribute("data-" + s.getAttribute("data-filter")) !== s.value) ok = false;
        });
        if (ok && needle && texts[i].indexOf(needle) < 0) ok = false;
        row.hidden = !ok;
        if (ok) shown++;
      });
      var picked = group ? group.value : "";
      Array.prototype.forEach.call(summaries, function (tr) {
        tr.classList.toggle("picked", picked !== "" && tr.getAttribute("data-group") === picked);
      });
      Array.prototype.forEach.call(figures, function (f) {
        f.hidden = picked !== "" && f.getAttribute("data-group") !== picked;
      });
      document.body.classList.toggle("all-rows", picked === "");
      applyColumns();
      if (status) {
        status.textContent = "Showing " + shown + " of " + rows.length + " experiments on this page" +
          (picked === "" ? " (all groups: not ranked against each other)" : " in " + picked);
      }
    }
    form.addEventListener("change", apply);
    form.addEventListener("input", apply);
    form.addEventListener("reset", function () { window.setTimeout(apply, 0); });
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    Array.prototype.forEach.call(document.querySelectorAll("button.pick-group"), function (b) {
      b.addEventListener("click", function () {
        if (!group) return;
        group.value = b.getAttribute("data-group");
        apply();
        var board = document.getElementById("filters");
        if (board) board.scrollIntoView();
      });
    });
    if (group && group.getAttribute("data-default")) group.value = group.getAttribute("data-default");
    form.hidden = false;
    apply();
  }

  /* Column chooser: columns not ticked are hidden; in the all-rows view rank and rating are too
     (they are ranks within a group). */
  function applyColumns() {
    var boxes = document.querySelectorAll("input[data-col]");
    if (!boxes.length) return;
    var hide = {};
    var allRows = document.body.classList.contains("all-rows");
    Array.prototype.forEach.call(boxes, function (b) {
      var key = b.getAttribute("data-col");
      hide[key] = !b.checked || (allRows && (key === "rank" || key === "rating"));
    });
    Array.prototype.forEach.call(document.querySelectorAll("table.leaderboard"), function (table) {
      if (!table.tHead) return;
      var heads = table.tHead.rows[0].cells;
      var hidden = [];
      for (var i = 0; i < heads.length; i++) {
        hidden[i] = !!hide[heads[i].getAttribute("data-col")];
        heads[i].hidden = hidden[i];
      }
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        for (var j = 0; j < row.cells.length; j++) row.cells[j].hidden = hidden[j];
      });
    });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), makeSortable);
    var form = document.getElementById("filters");
    if (form) setUpFilters(form);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
