// lgen explore's page: builds the controls from /api/model, asks the server for each PNG.
// One request at a time: a slider dragged faster than the server answers sends only its
// latest value when the previous answer arrives (no queue of stale images).
// Each shown image fires a "lgen-rendered" event (detail: codes, bytes, ms) on document.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const state = { facts: null, d: 0, to: 0, c: [], seed: 0, mode: "image", png: null, codes: null, url: null };
  let inflight = false, pending = false, requestId = 0;

  const setStatus = (text) => { $("status").textContent = text || ""; };
  const el = (tag, props = {}, children = []) => {
    const node = Object.assign(document.createElement(tag), props);
    children.forEach((child) => node.append(child));
    return node;
  };

  function request() {
    // [url, fetch options] for the current mode; null when an upload is missing.
    const seed = `seed=${state.seed}`, c = `c=${state.c.map((v) => v.toFixed(3)).join(",")}`;
    if (state.mode === "grid") return [`/api/grid?vary=${$("grid-vary").value}&steps=${$("grid-steps").value}&${c}&${seed}`];
    if (state.mode === "strip") {
      return [`/api/strip?from=${state.d}&to=${$("strip-to").value}&steps=${$("strip-steps").value}&${c}&${seed}`];
    }
    if (state.mode === "upload") {
      const a = $("upload-a").files[0], b = $("upload-b").files[0];
      if (!a || !b) return null;
      return [`/api/upload-strip?split=${a.size}&steps=${$("upload-steps").value}&${seed}`,
        { method: "POST", body: new Blob([a, b]) }];
    }
    return [`/api/image?d=${state.d}&${c}&${seed}`];
  }

  async function render() {
    if (inflight) { pending = true; return; }
    const req = request();
    if (!req) { setStatus("choose two images"); return; }
    inflight = true;
    const id = ++requestId, started = performance.now();
    try {
      const resp = await fetch(...req);
      if (!resp.ok) { setStatus(`${resp.status}: ${await resp.text()}`); return; }
      const codes = JSON.parse(resp.headers.get("X-Lgen-Codes"));
      const bytes = new Uint8Array(await resp.arrayBuffer());
      const url = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
      await new Promise((ok, fail) => { const img = $("image"); img.onload = ok; img.onerror = fail; img.src = url; });
      if (state.url) URL.revokeObjectURL(state.url);
      Object.assign(state, { url, png: bytes, codes });
      showCodes(codes);
      setStatus("");
      document.dispatchEvent(new CustomEvent("lgen-rendered", { detail: { id, codes, bytes, ms: performance.now() - started } }));
    } catch (err) {
      setStatus(String(err));
    } finally {
      inflight = false;
      if (pending) { pending = false; render(); }
    }
  }

  function showCodes(codes) {
    const name = (d) => state.names[d] || `d ${d}`;
    const lines = [`mode ${codes.mode}, seed ${codes.seed}`];
    if (codes.mode === "image") lines.push(`d ${codes.d[0]} (${name(codes.d[0])}), c [${codes.c.join(", ")}]`);
    if (codes.ends) lines.push(codes.ends.map((e, i) => `${i ? "to" : "from"}: d ${e.d} (${name(e.d)}), p ${e.p}`).join("\n"));
    $("codes").textContent = lines.join("\n");
  }

  function classOptions(select, groups) {
    // One optgroup per domain; each option a d, named by d_classes.json where the bundle has one.
    groups.forEach((g) => {
      const group = el("optgroup", { label: g.domain });
      g.entries.forEach((e) => {
        const share = e.share === undefined ? "" : `, ${Math.round(e.share * 100)}%`;
        const label = e.name === `d ${e.d}` ? e.name : `${e.name} (d ${e.d}${share})`;
        const option = el("option", { value: e.d, textContent: label });
        option.dataset.name = e.name;
        group.append(option);
      });
      select.append(group);
    });
  }

  function slider(k, range) {
    const box = el("input", { type: "number", min: -range, max: range, step: 0.01, value: 0, id: `c${k + 1}-box` });
    const bar = el("input", { type: "range", min: -range, max: range, step: 0.01, value: 0, id: `c${k + 1}` });
    const set = (value, from) => {
      state.c[k] = value;
      if (from !== bar) bar.value = value;
      if (from !== box) box.value = value;
      render();
    };
    bar.addEventListener("input", () => set(Number(bar.value), bar));
    box.addEventListener("change", () => {
      const value = Number(box.value);
      if (!Number.isFinite(value) || Math.abs(value) > range) { setStatus(`c${k + 1} must be within ±${range}`); return; }
      set(value, box);
    });
    return el("div", { className: "slider" }, [el("span", { textContent: `c${k + 1}` }), bar, box]);
  }

  function table(head, rows) {
    return el("table", {}, [el("tr", {}, head.map((h) => el("th", { textContent: h }))),
      ...rows.map((r) => el("tr", {}, r.map((v) => el("td", { textContent: String(v) }))))]);
  }

  function card(f) {
    const parts = [el("h2", { textContent: "model" }),
      el("p", { textContent: `${f.model}: ${f.d_dim} d, ${f.c_dim} c, z ${f.z_dim}, images ${f.image_shape.join("×")}` }),
      el("h2", { textContent: "domains" }),
      table(["domain", "d", "learned by"], f.domains.map((d) => [d.name, `${d.d[0]}–${d.d[1]}`, d.learned_by]))];
    if (f.lineage.length) {
      parts.push(el("h2", { textContent: "lineage" }),
        table(["ancestor", "domains"], f.lineage.map((r) => [r.model, r.domains.join(" → ")])));
    }
    parts.push(el("h2", { textContent: "metrics" }));
    parts.push(f.metrics.length ? table(["metric", "value"], f.metrics) : el("p", { textContent: f.metrics_note }));
    $("card").replaceChildren(...parts);
  }

  function download() {
    if (!state.png) return;
    const d = state.mode === "image" ? `-d${state.d}` : "";
    const a = el("a", { href: state.url, download: `lgen-${state.mode}${d}-seed${state.seed}.png` });
    document.body.append(a);
    a.click();
    a.remove();
  }

  function wire(f) {
    state.facts = f;
    state.c = new Array(f.c_dim).fill(0);
    state.names = {};
    f.classes.forEach((g) => g.entries.forEach((e) => { state.names[e.d] = e.name; }));
    $("model-name").textContent = f.model;
    classOptions($("class-picker"), f.classes);
    classOptions($("strip-to"), f.classes);
    $("strip-to").selectedIndex = $("strip-to").options.length - 1;  // the last class: across domains
    state.d = Number($("class-picker").value);
    for (let k = 0; k < f.c_dim; k++) {
      $("sliders").append(slider(k, f.c_range));
      $("grid-vary").append(el("option", { value: k + 1, textContent: `c${k + 1}` }));
    }
    $("class-picker").addEventListener("change", () => { state.d = Number($("class-picker").value); render(); });
    $("seed").addEventListener("change", () => {
      const seed = Number($("seed").value);
      if (!Number.isInteger(seed) || seed < 0 || seed > 4294967295) { setStatus("seed: an integer 0..4294967295"); return; }
      state.seed = seed;
      render();
    });
    $("new-z").addEventListener("click", () => {
      state.seed = Math.floor(Math.random() * 4294967296);
      $("seed").value = state.seed;
      render();
    });
    document.querySelectorAll("input[name=mode]").forEach((radio) => radio.addEventListener("change", () => {
      state.mode = radio.value;
      document.body.dataset.mode = radio.value;
      render();
    }));
    ["grid-vary", "grid-steps", "strip-to", "strip-steps", "upload-a", "upload-b", "upload-steps"]
      .forEach((id) => $(id).addEventListener("change", render));
    $("download").addEventListener("click", download);
    card(f);
  }

  const ready = fetch("/api/model")
    .then((resp) => (resp.ok ? resp.json() : resp.text().then((t) => { throw new Error(t); })))
    .then((f) => { wire(f); document.body.dataset.mode = "image"; return render(); })
    .catch((err) => setStatus(String(err)));
  window.lgenExplore = { ready, state, render };
})();
