// Upload form: drop or choose several X-rays, check them here first, read DICOM headers, and post the
// form with a progress bar. Without this script the same form still posts as plain HTML.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = form.querySelector("input[type=file][name=images]");
  const dropZone = document.getElementById("upload-drop-zone");
  const list = document.getElementById("upload-files");
  const errors = document.getElementById("upload-errors");
  const progress = document.getElementById("upload-progress");
  const bar = progress.querySelector(".progress-bar");
  const submit = document.getElementById("upload-submit");
  const viewField = form.elements.namedItem("view");
  const dateField = form.elements.namedItem("acquisition_date");
  const maxBytes = Number(input.dataset.maxBytes);
  const HEADER_BYTES = 256 * 1024;
  let entries = [];
  let uploading = false;

  function formatSize(bytes) {
    if (bytes < 1024) return `${bytes} bytes`;
    const units = ["KB", "MB", "GB"];
    let value = bytes / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return `${value.toFixed(1)} ${units[unit]}`;
  }

  function formatDate(iso) {
    const date = new Date(`${iso}T00:00:00`);
    return date.toLocaleDateString("en-GB", { day: "numeric", month: "short", year: "numeric" });
  }

  // The format by content, as the server decides it: a file's name says nothing for sure.
  async function sniff(file) {
    const head = new Uint8Array(await file.slice(0, 132).arrayBuffer());
    const starts = (bytes) => bytes.every((byte, i) => head[i] === byte);
    if (starts([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "PNG";
    if (starts([0xff, 0xd8, 0xff])) return "JPEG";
    if (head.length >= 132 && String.fromCharCode(...head.slice(128, 132)) === "DICM") return "DICOM";
    return null;
  }

  function problemWith(file, type) {
    if (file.size === 0) return "The file is empty.";
    if (file.size > maxBytes) return `The file is ${formatSize(file.size)}; the limit is ${formatSize(maxBytes)}.`;
    if (!type) return "This is not a PNG, JPEG or DICOM image (whatever its name says).";
    return "";
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function showErrors(messages) {
    errors.replaceChildren();
    if (!messages.length) { errors.hidden = true; return; }
    errors.append(element("div", "fw-semibold", "Nothing was uploaded."));
    const items = element("ul", "mb-0");
    messages.forEach((message) => items.append(element("li", "", message)));
    errors.append(items);
    errors.hidden = false;
    errors.focus();
  }

  // Keep the file input holding exactly the listed files, so the form data matches the list.
  function syncInput() {
    const transfer = new DataTransfer();
    entries.forEach((entry) => transfer.items.add(entry.file));
    input.files = transfer.files;
  }

  async function addFiles(files) {
    if (uploading) return;
    const known = new Set(entries.map((entry) => `${entry.file.name}/${entry.file.size}/${entry.file.lastModified}`));
    for (const file of Array.from(files)) {
      const key = `${file.name}/${file.size}/${file.lastModified}`;
      if (known.has(key)) continue;
      known.add(key);
      const type = await sniff(file);
      const entry = { file, type, problem: problemWith(file, type), header: null };
      entries.push(entry);
      if (type === "DICOM" && !entry.problem) readHeader(entry);
    }
    syncInput();
    render();
  }

  function removeEntry(entry) {
    entries = entries.filter((other) => other !== entry);
    syncInput();
    render();
  }

  async function readHeader(entry) {
    const data = new FormData();
    data.append("header", entry.file.slice(0, HEADER_BYTES), entry.file.name);
    data.append("csrfmiddlewaretoken", form.elements.namedItem("csrfmiddlewaretoken").value);
    try {
      const response = await fetch(form.dataset.headerUrl, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-Requested-With": "XMLHttpRequest" },
      });
      const body = await response.json();
      entry.header = response.ok ? body : { error: body.error || `the server answered HTTP ${response.status}.` };
    } catch (error) {
      entry.header = { error: "the server did not answer." };
    }
    if (entry.header.error) {
      render();
      return;
    }
    // One DICOM alone: its header fills the view and date the doctor has not set. With several files the
    // fields would apply to all of them, so the doctor chooses; left blank, each DICOM uses its own header.
    if (entries.length === 1 && !viewField.value && !dateField.value) applyHeader(entry.header);
    render();
  }

  function applyHeader(header) {
    if (header.view_position) viewField.value = header.view_position;
    if (header.study_date) dateField.value = header.study_date;
  }

  function headerBlock(entry) {
    const header = entry.header;
    const block = element("div", "upload-dicom small mt-2");
    if (header.error) {
      block.append(element("div", "text-body-secondary", `DICOM header not shown: ${header.error}`));
      return block;
    }
    const parts = [
      header.patient_name || "no name",
      `ID ${header.patient_id || "none"}`,
      `study date ${header.study_date ? formatDate(header.study_date) : "none"}`,
      `view ${header.view_position || "not PA or AP"}`,
    ];
    block.append(element("div", "upload-dicom-summary", `From the DICOM header: ${parts.join(", ")}`));
    if (header.patient_id && !header.matches_patient) {
      block.append(element(
        "div",
        "alert alert-warning py-1 px-2 my-1 upload-dicom-mismatch",
        `Wrong patient? The header's patient ID ${header.patient_id} differs from this patient's MRN ` +
          `${form.dataset.mrn}.`,
      ));
    }
    if (header.view_position || header.study_date) {
      const use = element("button", "btn btn-sm btn-outline-secondary mt-1 upload-dicom-apply",
        entries.length > 1 ? "Use this view and date for all files" : "Use this view and date");
      use.type = "button";
      use.disabled = uploading;
      use.addEventListener("click", () => applyHeader(header));
      block.append(use);
    }
    return block;
  }

  function render() {
    list.replaceChildren();
    list.hidden = entries.length === 0;
    entries.forEach((entry) => {
      const item = element("li", "list-group-item upload-file");
      if (entry.problem) item.classList.add("list-group-item-danger");
      const row = element("div", "d-flex justify-content-between align-items-start gap-2");
      const details = element("div", "text-break");
      details.append(element("div", "fw-semibold upload-file-name", entry.file.name));
      details.append(element("div", "small text-body-secondary upload-file-meta",
        `${formatSize(entry.file.size)} · ${entry.type || "unknown type"}`));
      if (entry.problem) details.append(element("div", "small text-danger upload-file-problem", entry.problem));
      if (entry.type === "DICOM" && !entry.problem && !entry.header) {
        details.append(element("div", "small text-body-secondary", "Reading the DICOM header…"));
      }
      const remove = element("button", "btn-close");
      remove.type = "button";
      remove.disabled = uploading;
      remove.setAttribute("aria-label", `Remove ${entry.file.name}`);
      remove.addEventListener("click", () => removeEntry(entry));
      row.append(details, remove);
      item.append(row);
      if (entry.header) item.append(headerBlock(entry));
      list.append(item);
    });
  }

  function setProgress(percent, label) {
    const rounded = Math.round(percent);
    progress.setAttribute("aria-valuenow", String(rounded));
    bar.style.width = `${rounded}%`;
    bar.textContent = label || `${rounded}%`;
  }

  function setUploading(on) {
    uploading = on;
    submit.disabled = on;
    dropZone.setAttribute("aria-disabled", String(on));
    input.disabled = on;
    render();
  }

  function send() {
    const data = new FormData(form);
    data.delete("images");
    entries.forEach((entry) => data.append("images", entry.file, entry.file.name));
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      const percent = (100 * event.loaded) / event.total;
      setProgress(percent, percent >= 100 ? "Checking the images…" : undefined);
    });
    request.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch (error) { body = null; }
      if (request.status === 201 && body && body.redirect) {
        setProgress(100, "Uploaded; opening…");
        window.location.assign(body.redirect);
        return;
      }
      progress.hidden = true;
      setUploading(false);
      showErrors(body && body.errors ? body.errors : [
        `The server refused the upload (HTTP ${request.status}). Reload the page and try again.`,
      ]);
    });
    request.addEventListener("error", () => {
      progress.hidden = true;
      setUploading(false);
      showErrors(["The upload did not reach the server. Check the connection and try again."]);
    });
    setUploading(true);
    setProgress(0);
    progress.hidden = false;
    request.send(data);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (uploading) return;
    showErrors([]);
    if (!entries.length) { showErrors(["Choose at least one image to upload."]); return; }
    const problems = entries.filter((entry) => entry.problem).map((entry) => `${entry.file.name}: ${entry.problem}`);
    if (problems.length) { showErrors([...problems, "Remove these files from the list, then upload again."]); return; }
    send();
  });

  input.addEventListener("change", () => {
    const chosen = Array.from(input.files);
    syncInput(); // the browser replaced the selection; the list keeps what was chosen before
    addFiles(chosen);
  });

  const choose = () => { if (!uploading) input.click(); };
  dropZone.addEventListener("click", choose);
  dropZone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); choose(); }
  });
  ["dragenter", "dragover"].forEach((name) => dropZone.addEventListener(name, (event) => {
    event.preventDefault();
    dropZone.classList.add("upload-drop-zone-active");
  }));
  ["dragleave", "drop"].forEach((name) => dropZone.addEventListener(name, () => {
    dropZone.classList.remove("upload-drop-zone-active");
  }));
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    addFiles(event.dataTransfer.files);
  });

  // The drop zone stands in for the file input, which stays in the page (and in the form) unseen.
  input.classList.add("visually-hidden");
  input.tabIndex = -1;
  document.getElementById("upload-limit").textContent = formatSize(maxBytes);
  dropZone.hidden = false;
  if (input.files.length) addFiles(input.files);
})();
