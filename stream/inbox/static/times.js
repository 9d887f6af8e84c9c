// Times in the browser's own zone: the server writes UTC (with data-local) when the users file
// names no zone for the user; the UTC time stays on hover. Without JavaScript, UTC is shown.
(function () {
  var shown = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    timeZoneName: "short"
  });
  function local(root) {
    root.querySelectorAll("time[data-local]").forEach(function (t) {
      var at = new Date(t.getAttribute("datetime"));
      if (!isNaN(at)) { t.textContent = shown.format(at); t.removeAttribute("data-local"); }
    });
  }
  local(document);
  // the live queue view replaces its table: convert what it brings
  var box = document.getElementById("live");
  if (box && window.MutationObserver) {
    new MutationObserver(function () { local(box); }).observe(box, { childList: true, subtree: true });
  }
})();
