// Scan page: the image viewer (zoom, pan, heatmap opacity) and the poller that fills in the result.
// The report page only uses the print button.
(function () {
  "use strict";
  document.querySelectorAll("[data-action=print]").forEach((button) => {
    button.addEventListener("click", () => window.print());
  });

  const root = document.getElementById("scan");
  if (!root) return;
  const byId = (id) => document.getElementById(id);
  const show = (id, text) => { byId(id).textContent = text; };

  // Heatmap: on/off and its opacity over the radiograph.
  const heatmap = byId("scan-heatmap");
  const toggle = byId("heatmap-toggle");
  const opacity = byId("heatmap-opacity");
  function paintHeatmap() {
    heatmap.style.visibility = toggle.checked ? "visible" : "hidden";
    heatmap.style.opacity = String(Number(opacity.value) / 100);
    opacity.disabled = !toggle.checked;
    show("heatmap-opacity-value", `${opacity.value}%`);
  }
  toggle.addEventListener("change", paintHeatmap);
  opacity.addEventListener("input", paintHeatmap);
  paintHeatmap();

  // Zoom and pan: one CSS transform on the stage holding both images, so they stay aligned.
  const viewport = byId("scan-viewport");
  const stage = byId("scan-stage");
  const MIN_ZOOM = 1;
  const MAX_ZOOM = 8;
  const STEP = 1.25;
  const view = { zoom: 1, x: 0, y: 0 };

  function clampPan() {
    const width = viewport.clientWidth;
    const height = stage.offsetHeight;
    view.x = Math.min(0, Math.max(width - width * view.zoom, view.x));
    view.y = Math.min(0, Math.max(viewport.clientHeight - height * view.zoom, view.y));
  }

  function paintView() {
    clampPan();
    stage.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.zoom})`;
    viewport.classList.toggle("is-zoomed", view.zoom > 1);
    show("zoom-level", `${Math.round(view.zoom * 100)}%`);
    byId("zoom-out").disabled = view.zoom <= MIN_ZOOM;
    byId("zoom-reset").disabled = view.zoom === 1;
    byId("zoom-in").disabled = view.zoom >= MAX_ZOOM;
  }

  // Zoom keeping the point under (cx, cy), in viewport pixels, where it is.
  function zoomTo(zoom, cx = viewport.clientWidth / 2, cy = viewport.clientHeight / 2) {
    const next = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, zoom));
    view.x = cx - ((cx - view.x) / view.zoom) * next;
    view.y = cy - ((cy - view.y) / view.zoom) * next;
    view.zoom = next;
    paintView();
  }

  byId("zoom-in").addEventListener("click", () => zoomTo(view.zoom * STEP));
  byId("zoom-out").addEventListener("click", () => zoomTo(view.zoom / STEP));
  byId("zoom-reset").addEventListener("click", () => zoomTo(1));

  // At 100% the wheel scrolls the page; ctrl+wheel (a trackpad pinch) zooms, and so does any wheel once zoomed.
  viewport.addEventListener("wheel", (event) => {
    if (!event.ctrlKey && view.zoom === 1) return;
    event.preventDefault();
    const box = viewport.getBoundingClientRect();
    zoomTo(view.zoom * (event.deltaY < 0 ? STEP : 1 / STEP), event.clientX - box.left, event.clientY - box.top);
  }, { passive: false });

  // One pointer drags when zoomed; two (fingers on a tablet) pinch.
  const pointers = new Map();
  let gesture = null;
  function startGesture() {
    const [a, b] = [...pointers.values()];
    gesture = b
      ? { zoom: view.zoom, distance: Math.hypot(a.x - b.x, a.y - b.y) || 1 }
      : { x: a.x - view.x, y: a.y - view.y };
  }
  viewport.addEventListener("pointerdown", (event) => {
    if (view.zoom <= 1 && event.pointerType === "mouse") return;
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    viewport.setPointerCapture(event.pointerId);
    viewport.classList.add("is-panning");
    startGesture();
  });
  viewport.addEventListener("pointermove", (event) => {
    if (!pointers.has(event.pointerId)) return;
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    const [a, b] = [...pointers.values()];
    if (b) {
      const box = viewport.getBoundingClientRect();
      const distance = Math.hypot(a.x - b.x, a.y - b.y);
      zoomTo(gesture.zoom * (distance / gesture.distance), (a.x + b.x) / 2 - box.left, (a.y + b.y) / 2 - box.top);
    } else if (view.zoom > 1) {
      view.x = a.x - gesture.x;
      view.y = a.y - gesture.y;
      paintView();
    }
  });
  function endPointer(event) {
    pointers.delete(event.pointerId);
    if (pointers.size) startGesture();
    else viewport.classList.remove("is-panning");
  }
  viewport.addEventListener("pointerup", endPointer);
  viewport.addEventListener("pointercancel", endPointer);

  const PAN_KEYS = { ArrowLeft: [1, 0], ArrowRight: [-1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };
  viewport.addEventListener("keydown", (event) => {
    if (event.key === "+" || event.key === "=") zoomTo(view.zoom * STEP);
    else if (event.key === "-") zoomTo(view.zoom / STEP);
    else if (event.key === "0") zoomTo(1);
    else if (PAN_KEYS[event.key] && view.zoom > 1) {
      const [dx, dy] = PAN_KEYS[event.key];
      view.x += dx * viewport.clientWidth * 0.1;
      view.y += dy * viewport.clientHeight * 0.1;
      paintView();
    } else return;
    event.preventDefault();
  });
  window.addEventListener("resize", paintView);
  paintView();

  // The result, filled in when the poller brings it.
  function renderReading(reading) {
    byId("reading-available").hidden = !reading.available;
    byId("reading-unavailable").hidden = reading.available;
    show("reading-unavailable", reading.unavailable);
    if (!reading.available) return;
    show("reading-evidence", reading.evidence.text);
    for (const key of ["warning", "confounded", "band"]) {
      const note = byId(`reading-${key}`);
      note.textContent = reading.evidence[key];
      note.hidden = !reading.evidence[key];
    }
    show("reading-sensitivity", reading.sensitivity.text);
    show("reading-specificity", reading.specificity.text);
    show("reading-ppv", reading.ppv.text);
    show("reading-npv", reading.npv.text);
    document.querySelectorAll(".reading-prevalence").forEach((node) => { node.textContent = reading.prevalence_text; });
    const explanation = byId("reading-explanation");
    explanation.textContent = reading.explanation || "";
    explanation.hidden = !reading.explanation;
  }

  function badgeClass(data, prefix) {
    if (data.indeterminate) return `${prefix}warning`;
    return data.positive ? `${prefix}danger` : `${prefix}success`;
  }

  function renderClassProbabilities(entries) {
    const list = byId("class-probabilities");
    list.replaceChildren();
    for (const entry of entries) {
      const term = document.createElement("dt");
      term.className = entry.called ? "col-6 fw-semibold" : "col-6 fw-normal";
      term.dataset.class = entry.name;
      term.textContent = entry.display;
      const value = document.createElement("dd");
      value.className = "col-6 mb-0";
      value.textContent = entry.probability.toFixed(3);
      list.append(term, value);
    }
  }

  function renderResult(data) {
    byId("scan-result").hidden = false;
    const label = byId("scan-label");
    label.textContent = data.result_display;
    label.className = `badge ${badgeClass(data, "text-bg-")}`;
    byId("probability-bar").setAttribute("aria-valuenow", String(data.probability_percent));
    const fill = byId("probability-fill");
    fill.style.width = `${data.probability_percent}%`;
    fill.className = `progress-bar ${badgeClass(data, "bg-")}`;
    const band = byId("band-marker");
    band.hidden = !data.band_percent;
    byId("band-text").hidden = !data.band_percent;
    if (data.band_percent) {
      band.style.left = `${data.band_percent.left}%`;
      band.style.width = `${data.band_percent.width}%`;
    }
    byId("threshold-marker").style.left = `${data.threshold_percent}%`;
    byId("threshold-label").style.left = `${data.threshold_label_percent}%`;
    show("scan-probability", data.probability.toFixed(3));
    show("scan-threshold", data.threshold.toFixed(3));
    document.querySelectorAll(".scan-positive-name").forEach((node) => { node.textContent = data.positive_name; });
    byId("probability-bar").setAttribute("aria-label", `Probability of ${data.positive_name}`);
    show("scan-negative-rule", data.negative_rule ? `; ${data.negative_rule}` : "");
    renderClassProbabilities(data.class_probabilities);
  }

  function renderVersion(data) {
    byId("scan-version-block").hidden = false;
    show("scan-version", data.model_version || "");
    renderReading(data.reading);
    for (const [key, text] of Object.entries(data.timings_text)) show(`timing-${key}`, text);
    show("timing-batch_size", data.batch_size ?? "—");
  }

  function render(data) {
    show("scan-status", data.status_display);
    show("scan-message", data.message || "");
    byId("scan-not-assessable").hidden = !data.not_assessable;
    show("not-assessable-reason", data.not_assessable_reason || "");
    byId("gate-warning").hidden = !data.gate_warning;
    show("gate-warning", data.gate_warning || "");
    if (data.result) renderResult(data);
    if (data.model_version) renderVersion(data);
    const reviewCard = byId("review-card");
    if (reviewCard && data.status === "done") reviewCard.hidden = false;
    const preview = byId("scan-preview");
    if (data.preview_url && preview.hidden) {
      preview.src = data.preview_url;
      preview.hidden = false;
      preview.addEventListener("load", paintView, { once: true });
    }
    if (data.heatmap_url && heatmap.hidden) {
      heatmap.src = data.heatmap_url;
      heatmap.hidden = false;
      byId("heatmap-controls").hidden = false;
      byId("heatmap-caption").hidden = false;
    }
    const report = byId("scan-report-link");
    if (data.report_url) { report.href = data.report_url; report.hidden = false; }
  }

  // The poller. It waits 1 s, then twice as long after each answer that brings nothing new (up to the longest
  // pause); news (a new status) makes it look again soon. It stops after a bounded time and offers to check
  // again, and when the session has ended. The server does not count polls as activity, so an unattended
  // page still signs out after the idle period.
  const FIRST_DELAY_MS = 1000;
  const maxDelay = Number(root.dataset.pollMaxIntervalMs);
  const stopAfter = Number(root.dataset.pollStopAfterMs);
  let delay = 0;
  let deadline = 0;
  let lastState = null;

  function stopPolling(noticeId) {
    byId(noticeId).hidden = false;
  }

  function schedule(news) {
    delay = news || !delay ? FIRST_DELAY_MS : Math.min(delay * 2, maxDelay);
    if (Date.now() + delay > deadline) {
      stopPolling("poll-stopped");
      return;
    }
    setTimeout(poll, delay);
  }

  async function poll() {
    let news = false;
    try {
      const response = await fetch(root.dataset.statusUrl, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (response.redirected) {
        stopPolling("poll-signed-out");
        return;
      }
      if (response.ok) {
        const data = await response.json();
        render(data);
        if (data.finished) return;
        const state = `${data.status} ${Boolean(data.label)} ${Boolean(data.preview_url)}`;
        news = lastState !== null && state !== lastState;
        lastState = state;
      }
    } catch (error) {
      // The server or the network is down for now: the next, longer pause gives it time.
    }
    schedule(news);
  }

  function startPolling({ now }) {
    byId("poll-stopped").hidden = true;
    delay = 0;
    deadline = Date.now() + stopAfter;
    if (now) poll();
    else schedule(false);
  }

  byId("poll-again").addEventListener("click", () => startPolling({ now: true }));
  if (root.dataset.finished !== "true") startPolling({ now: false });
})();
