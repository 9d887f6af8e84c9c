// Live updates of the queue view: the server says when the read model changed (server-sent
// events), and the table is fetched again. Without JavaScript the page works the same;
// "reload" shows the news.
(function () {
  var box = document.getElementById("live");
  if (!box || !window.EventSource) return;
  var busy = false;
  function refresh() {
    if (busy) return;
    busy = true;
    fetch(box.dataset.url, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) box.innerHTML = html; })
      .finally(function () { busy = false; });
  }
  var first = true;
  new EventSource("/live").addEventListener("changed", function () {
    if (first) { first = false; return; }
    refresh();
  });
})();
