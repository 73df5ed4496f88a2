// Progressive enhancement only: every page works without this script.
// Tables marked class="sortable" get a button in each column header that sorts the rows
// (aria-sort tells screen readers the order); the server's order is the initial one.
"use strict";
(function () {
  function cellText(row, index) {
    var cell = row.children[index];
    return cell ? (cell.getAttribute("data-sort") || cell.textContent).trim() : "";
  }
  function compare(a, b) {
    var x = parseFloat(a.replace(",", ".")), y = parseFloat(b.replace(",", "."));
    if (!isNaN(x) && !isNaN(y) && /^[\d.,\s%-]+$/.test(a) && /^[\d.,\s%-]+$/.test(b)) return x - y;
    return a.localeCompare(b, document.documentElement.lang || undefined, {numeric: true});
  }
  function enhance(table) {
    var headers = table.querySelectorAll("thead th");
    headers.forEach(function (th, index) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      button.textContent = th.textContent;
      th.textContent = "";
      th.appendChild(button);
      button.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var order = compare(cellText(r1, index), cellText(r2, index));
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.sortable").forEach(enhance);
  });
})();
