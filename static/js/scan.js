// Scan page: poll the status endpoint until the result and then the heatmap arrive.
(function () {
  "use strict";
  const root = document.getElementById("scan");
  if (!root) return;
  const url = root.dataset.statusUrl;
  const heatmap = document.getElementById("scan-heatmap");
  const toggle = document.getElementById("heatmap-toggle");
  const show = (id, text) => { document.getElementById(id).textContent = text; };

  toggle.addEventListener("change", () => { heatmap.style.visibility = toggle.checked ? "visible" : "hidden"; });

  function render(data) {
    show("scan-status", data.status_display);
    show("scan-message", data.message || "");
    if (data.label) {
      document.getElementById("scan-result").hidden = false;
      show("scan-label", data.label);
      show("scan-probability", data.probability.toFixed(3));
      show("scan-threshold", data.threshold.toFixed(3));
      show("scan-version", data.model_version);
    }
    const preview = document.getElementById("scan-preview");
    if (data.preview_url && preview.hidden) { preview.src = data.preview_url; preview.hidden = false; }
    if (data.heatmap_url && heatmap.hidden) { heatmap.src = data.heatmap_url; heatmap.hidden = false; }
  }

  let delay = 1000;
  async function poll() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok) {
        const data = await response.json();
        render(data);
        if (data.finished) return;
      }
    } catch (error) {
      delay = Math.min(delay * 2, 15000);
    }
    setTimeout(poll, delay);
  }
  poll();
})();
