// The in-page test of tests/test_explore_browser.py (served by the test only, never by lgen):
// picks ?class=NAME in the class picker, moves the c1 slider 20 times, times each move from
// the input event to the new image shown, and posts what it saw to /__test/report.
// The image /__test/hold keeps the page's load event (and so chromium's screenshot) waiting
// until the report is in: the screenshot shows the page after the last move.
"use strict";
(() => {
  const hold = document.createElement("img");
  hold.src = "/__test/hold";
  hold.alt = "";
  hold.style.display = "none";
  document.body.append(hold);
  const rendered = () => new Promise((ok) => document.addEventListener("lgen-rendered", (e) => ok(e.detail), { once: true }));
  const hash = (bytes) => bytes.reduce((h, b) => Math.imul(h ^ b, 16777619) >>> 0, 2166136261);
  (async () => {
    const result = { errors: [], moves: [] };
    try {
      await window.lgenExplore.ready;
      const wanted = new URLSearchParams(location.search).get("class");
      const picker = document.getElementById("class-picker");
      const option = [...picker.options].find((o) => o.dataset.name === wanted);
      picker.value = option.value;
      let next = rendered();
      picker.dispatchEvent(new Event("change"));
      const first = await next;
      result.picked = { name: wanted, d: Number(option.value), generated: first.codes.d[0], hash: hash(first.bytes) };
      const slider = document.getElementById("c1");
      for (let i = 0; i < 20; i++) {
        next = rendered();
        const started = performance.now();
        slider.value = (-2 + (4 * i) / 19).toFixed(2);
        slider.dispatchEvent(new Event("input"));
        const shown = await next;
        result.moves.push({ ms: performance.now() - started, d: shown.codes.d[0], c1: shown.codes.c[0], hash: hash(shown.bytes) });
      }
      result.status = document.getElementById("status").textContent;
      result.box = document.getElementById("c1-box").value;
    } catch (err) {
      result.errors.push(String(err));
    }
    await fetch("/__test/report", { method: "POST", body: JSON.stringify(result) });
  })();
})();
