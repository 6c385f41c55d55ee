// The run page's auto-refresh toggle: while it is on (the default; the choice
// is remembered per browser), reload the page every few seconds, keeping the
// scroll position. It is only rendered for a run that is still active.
(function () {
  "use strict";
  var toggle = document.getElementById("squidmesh-auto-refresh");
  if (!toggle) {
    return;
  }
  var choiceKey = "squidmesh.autoRefresh";
  var scrollKey = "squidmesh.autoRefreshScroll:" + window.location.pathname;
  var seconds = Number(toggle.getAttribute("data-interval")) || 5;
  var timer = null;

  toggle.checked = window.localStorage.getItem(choiceKey) !== "off";
  var savedScroll = window.sessionStorage.getItem(scrollKey);
  if (savedScroll !== null) {
    window.sessionStorage.removeItem(scrollKey);
    window.scrollTo(0, Number(savedScroll));
  }

  function schedule() {
    window.clearTimeout(timer);
    if (toggle.checked) {
      timer = window.setTimeout(function () {
        window.sessionStorage.setItem(scrollKey, String(window.scrollY));
        window.location.reload();
      }, seconds * 1000);
    }
  }

  toggle.addEventListener("change", function () {
    window.localStorage.setItem(choiceKey, toggle.checked ? "on" : "off");
    schedule();
  });
  schedule();
})();
