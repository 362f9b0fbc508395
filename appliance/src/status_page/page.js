// The status page's live refresh: every two seconds, fetch the page again
// and swap in its <main>, so tables and chart follow the director without
// a reload (and without losing the scroll position). When the director
// does not answer, a banner says the page is stale. Without JavaScript the
// page reloads itself instead (its <noscript> refresh).
"use strict";
(function () {
  const PERIOD = 2000;
  let refreshes = 0;
  async function refresh() {
    try {
      // A director that is gone may never answer: give up after two periods.
      const reply = await fetch(location.pathname, {
        cache: "no-store",
        signal: AbortSignal.timeout(2 * PERIOD),
      });
      if (!reply.ok) {
        throw new Error("HTTP " + reply.status);
      }
      const page = new DOMParser().parseFromString(await reply.text(), "text/html");
      const fresh = page.getElementById("live");
      const live = document.getElementById("live");
      if (!fresh || !live) {
        throw new Error("no live part in the page");
      }
      live.replaceWith(document.adoptNode(fresh));
      refreshes += 1;
      document.body.dataset.refreshes = String(refreshes);
      document.body.classList.remove("stale");
    } catch (e) {
      document.body.classList.add("stale");
    }
    setTimeout(refresh, PERIOD);
  }
  setTimeout(refresh, PERIOD);
})();
