// Sortable tables: click a header to sort by that column (numbers numerically, `–` last); rows
// marked data-pinned (the published row, labelled extra rows) keep their order below the rest.
(function () {
  "use strict";
  function key(cell) {
    var text = cell.textContent.trim().replace(/[\u2020\u2021\u02e1*]+$/, "");
    var num = parseFloat(text);
    return isNaN(num) || !/^[-+]?[0-9.]+(e[-+]?[0-9]+)?$/i.test(text) ? { num: null, text: text } : { num: num, text: text };
  }
  function compare(a, b) {
    if (a.num !== null && b.num !== null) { return a.num - b.num; }
    if (a.num !== null) { return -1; }
    if (b.num !== null) { return 1; }
    return a.text.localeCompare(b.text);
  }
  function sortBy(table, th) {
    var col = Number(th.getAttribute("data-col"));
    var asc = !th.classList.contains("sorted-asc");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var ranked = rows.filter(function (row) { return !row.hasAttribute("data-pinned"); });
    var pinned = rows.filter(function (row) { return row.hasAttribute("data-pinned"); });
    ranked.sort(function (r1, r2) {
      var d = compare(key(r1.cells[col]), key(r2.cells[col]));
      return asc ? d : -d;
    });
    ranked.concat(pinned).forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      h.classList.remove("sorted-asc", "sorted-desc");
    });
    th.classList.add(asc ? "sorted-asc" : "sorted-desc");
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.addEventListener("click", function () { sortBy(table, th); });
    });
  });
})();
