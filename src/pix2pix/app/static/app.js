// The pix2pix page: draw (or upload, or pick a sample) on the left, see the model's output on the right.
// Label-map models get a palette of their classes; sketch models a pen on white. Drawing is done with
// axis-aligned filled squares, never anti-aliased lines, so a label map holds only its palette's colours.
// The model runs on the server (POST /api/translate) or in this page (engine.js); a static site
// (`pix2pix export --format web`, <body data-site>) has no server, so always the page.
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("input"), ctx = canvas.getContext("2d", { willReadFrequently: true });
const state = { models: [], model: null, tool: "brush", colour: "#000000", background: "#ffffff",
                seed: 0, undo: [], redo: [], timer: null, inflight: 0, outputUrl: null, dragStart: null,
                last: null, drawing: false, engine: "server", webcam: null, frames: 0,
                loaded: new Set() };
const SITE = document.body.dataset.site === "static";

function setStatus(text) { $("status").textContent = text; }

function resizeCanvas(w, h) {  // the drawing keeps its pixels; the screen shows it at most 384 px a side
  canvas.width = w; canvas.height = h;
  const s = 384 / Math.max(w, h);
  canvas.style.width = Math.round(w * s) + "px"; canvas.style.height = Math.round(h * s) + "px";
}

function snapshot() {
  state.undo.push(ctx.getImageData(0, 0, canvas.width, canvas.height));
  if (state.undo.length > 50) state.undo.shift();
  state.redo = [];
}

function stamp(x, y) {
  const s = +$("size").value, h = Math.floor(s / 2);
  ctx.fillStyle = state.tool === "eraser" ? state.background : state.colour;
  ctx.fillRect(Math.round(x) - h, Math.round(y) - h, s, s);
}

function line(a, b) {  // squares along the segment, one per pixel of its length
  const n = Math.max(1, Math.ceil(Math.hypot(b.x - a.x, b.y - a.y)));
  for (let i = 0; i <= n; i++) stamp(a.x + (b.x - a.x) * i / n, a.y + (b.y - a.y) * i / n);
}

function point(e) {
  const r = canvas.getBoundingClientRect();
  return { x: (e.clientX - r.left) * canvas.width / r.width, y: (e.clientY - r.top) * canvas.height / r.height };
}

let rectBase = null;
canvas.addEventListener("pointerdown", (e) => {
  stopWebcam();  // drawing takes the canvas back
  canvas.setPointerCapture(e.pointerId);
  snapshot();
  state.drawing = true;
  const p = point(e);
  if (state.tool === "rect") { state.dragStart = p; rectBase = ctx.getImageData(0, 0, canvas.width, canvas.height); }
  else { stamp(p.x, p.y); state.last = p; }
  clearTimeout(state.timer);
});
canvas.addEventListener("pointermove", (e) => {
  if (!state.drawing) return;
  const p = point(e);
  if (state.tool === "rect") {
    ctx.putImageData(rectBase, 0, 0);
    const a = state.dragStart;
    ctx.fillStyle = state.colour;
    ctx.fillRect(Math.round(Math.min(a.x, p.x)), Math.round(Math.min(a.y, p.y)),
                 Math.round(Math.abs(p.x - a.x)), Math.round(Math.abs(p.y - a.y)));
  } else { line(state.last, p); state.last = p; }
});
function endStroke() {
  if (!state.drawing) return;
  state.drawing = false;
  schedule();
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

function schedule(delay = 350) {  // translate shortly after the user stops drawing
  clearTimeout(state.timer);
  state.timer = setTimeout(translate, delay);
}

async function translate() {  // true once the output shows this input (false: overtaken, or state.failed)
  state.failed = false;
  if (!state.model) return false;
  if (state.engine === "browser") return translateInPage();
  const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
  const form = new FormData();
  form.append("image", blob, "input.png");
  form.append("model", state.model.name);
  form.append("seed", String(state.seed));
  form.append("eval", $("eval").checked ? "true" : "false");
  const ticket = ++state.inflight;
  $("output-frame").classList.add("busy");
  if (!state.webcam) setStatus("translating…");
  const t0 = performance.now();
  try {
    const res = await fetch("/api/translate", { method: "POST", body: form });
    if (!res.ok) throw new Error((await res.json()).error || res.statusText);
    const out = await res.blob();
    if (ticket !== state.inflight) return false;  // a newer drawing is on its way
    showOutput(out);
    if (!state.webcam) setStatus(`${Math.round(performance.now() - t0)} ms`);
    return true;
  } catch (err) {
    if (ticket === state.inflight) setStatus("error: " + err.message);
    state.failed = true;
    return false;
  } finally {
    if (ticket === state.inflight) $("output-frame").classList.remove("busy");
  }
}

function showOutput(blob) {  // the output image, and what Download saves
  if (state.outputUrl) URL.revokeObjectURL(state.outputUrl);
  state.outputUrl = URL.createObjectURL(blob);
  $("output").src = state.outputUrl;
  $("download").href = state.outputUrl;
}

async function webInfo(m) {  // served models: the graph's inputs are described once it is asked for
  if (!m.web.inputs) {
    const res = await fetch(m.web.meta);
    if (!res.ok) throw new Error((await res.json()).error || res.statusText);
    Object.assign(m.web, await res.json());
  }
  return m.web;
}

async function translateInPage() {
  const ticket = ++state.inflight, m = state.model;
  $("output-frame").classList.add("busy");
  if (!state.webcam) setStatus(state.loaded.has(m.name) ? "translating…" : "loading the model…");
  try {
    await webInfo(m);
    const image = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const r = await InPage.translate(m, image, { evalMode: $("eval").checked, seed: state.seed });
    state.loaded.add(m.name);
    if (ticket !== state.inflight) return false;
    const out = document.createElement("canvas");
    out.width = r.image.width; out.height = r.image.height;
    out.getContext("2d").putImageData(r.image, 0, 0);
    showOutput(await new Promise((done) => out.toBlob(done, "image/png")));
    state.lastMs = r.ms;
    $("note").textContent = r.note;
    if (!state.webcam) setStatus(`${Math.round(r.ms)} ms in this browser (${r.engine})`);
    return true;
  } catch (err) {
    if (ticket === state.inflight) setStatus("error: " + (err.message || err));
    state.failed = true;
    return false;
  } finally {
    if (ticket === state.inflight) $("output-frame").classList.remove("busy");
  }
}

// The webcam: each frame drawn on the input canvas (its longer side 256) and translated with the same noise
// (the seed is not changed), one at a time; the frame rate is shown. A failed frame stops it, saying why.
async function toggleWebcam() {
  if (state.webcam) { stopWebcam(); return; }
  const cam = { stream: null, times: [] };
  state.webcam = cam;  // at once: a second click while the camera starts stops it
  $("webcam").classList.add("active");
  clearTimeout(state.timer);
  try {
    cam.stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    if (state.webcam !== cam) { cam.stream.getTracks().forEach((t) => t.stop()); return; }
    const video = $("video");
    video.srcObject = cam.stream;
    await video.play();
    snapshot();  // the drawing it replaces stays one undo away
    const s = 256 / Math.max(video.videoWidth, video.videoHeight);
    resizeCanvas(Math.round(video.videoWidth * s / 2) * 2, Math.round(video.videoHeight * s / 2) * 2);
    state.frames = 0;
    while (state.webcam === cam) {
      ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
      if (!await translate()) {
        if (state.failed) break;
        continue;  // overtaken (the eval switch, re-sample): the next frame goes on
      }
      if (state.webcam !== cam) break;
      state.frames++;
      cam.times.push(performance.now());
      if (cam.times.length > 10) cam.times.shift();
      const t = cam.times, fps = t.length > 1 ? 1000 * (t.length - 1) / (t[t.length - 1] - t[0]) : 0;
      setStatus(`webcam: ${fps.toFixed(1)} frames/s`);
      await new Promise((r) => requestAnimationFrame(r));
    }
  } catch (err) {
    setStatus("webcam: " + (err.message || err.name));
  }
  if (state.webcam === cam) stopWebcam();
}

function stopWebcam() {
  const cam = state.webcam;
  if (!cam) return;
  state.webcam = null;
  if (cam.stream) cam.stream.getTracks().forEach((t) => t.stop());
  $("webcam").classList.remove("active");
}

function fillCanvas(colour) {
  ctx.fillStyle = colour;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

function selectTool(tool) {
  state.tool = tool;
  document.querySelectorAll(".tool").forEach((b) => b.classList.toggle("active", b.dataset.tool === tool));
}

function buildPalette(m) {
  const box = $("palette");
  box.textContent = "";
  (m.classes || []).forEach((name, i) => {
    const b = document.createElement("button");
    b.className = "swatch" + (i === 2 ? " active" : "");
    b.dataset.colour = m.palette[i];
    b.title = name;
    b.innerHTML = `<i style="background:${m.palette[i]}"></i>${name}`;
    b.addEventListener("click", () => {
      document.querySelectorAll(".swatch").forEach((s) => s.classList.remove("active"));
      b.classList.add("active");
      state.colour = m.palette[i];
      if (state.tool === "eraser") selectTool("brush");
    });
    box.appendChild(b);
  });
}

async function loadSample(i) {
  const img = new Image();
  img.src = SITE ? `${state.model.sample_path}${i}.png`
                 : `/api/models/${encodeURIComponent(state.model.name)}/samples/${i}`;
  await img.decode();
  stopWebcam();
  snapshot();
  $("samples").value = String(i);
  resizeCanvas(img.naturalWidth, img.naturalHeight);
  ctx.drawImage(img, 0, 0);
  state.undo = []; state.redo = [];
  schedule(0);
}

function describeWeb(w) {  // what a static site says of its model: weights, size, PSNR, time at export
  const mb = (w.bytes / 2 ** 20).toFixed(w.bytes < 100 * 2 ** 20 ? 1 : 0);
  const psnr = w.psnr_db == null ? "" : ` (${w.psnr_db} dB against fp32${w.on_val ? " on val" : ""})`;
  return ` · ${w.weights} weights, ${mb} MiB${psnr} · exported on ${w.measured_on}, where ONNX Runtime ` +
    `took ${w.ms_per_image} ms an image`;
}

function chooseEngine(m) {
  const browser = $("engine").querySelector("option[value=browser]");
  browser.disabled = !m.web;
  browser.textContent = m.web ? "this browser" : "this browser (" + (m.web_unavailable || "not offered") + ")";
  state.engine = SITE ? "browser" : (m.web && m.web.default ? "browser" : "server");
  $("engine").value = state.engine;
}

function showInfo(m) {  // the model, and what runs it (the server's engine, or this browser)
  const where = SITE ? describeWeb(m.web) : ` · ${state.engine === "browser" ? "in this browser" : m.backend}`;
  $("model-info").textContent = `${m.kind} → photo · ${m.generator}` + where + (m.step != null ? ` · step ${m.step}` : "");
}

function useModel(m) {
  stopWebcam();
  state.model = m;
  document.body.className = "kind-" + m.kind;
  chooseEngine(m);
  showInfo(m);
  if (m.kind === "labels") {
    state.background = m.palette[0]; state.colour = m.palette[Math.min(2, m.palette.length - 1)];
    buildPalette(m);
  } else { state.background = "#ffffff"; state.colour = "#000000"; }
  const s = $("samples");
  s.length = 1;
  for (let i = 0; i < m.samples; i++) s.add(new Option(`sample ${i + 1}`, String(i)));
  s.disabled = m.samples === 0;
  selectTool("brush");
  if (m.samples > 0) loadSample(0);
  else { resizeCanvas(256, 256); fillCanvas(m.kind === "labels" ? m.palette[1] : "#ffffff"); schedule(0); }
}

document.querySelectorAll(".tool").forEach((b) => b.addEventListener("click", () => selectTool(b.dataset.tool)));
$("undo").addEventListener("click", () => {
  if (!state.undo.length) return;
  state.redo.push(ctx.getImageData(0, 0, canvas.width, canvas.height));
  ctx.putImageData(state.undo.pop(), 0, 0); schedule();
});
$("redo").addEventListener("click", () => {
  if (!state.redo.length) return;
  state.undo.push(ctx.getImageData(0, 0, canvas.width, canvas.height));
  ctx.putImageData(state.redo.pop(), 0, 0); schedule();
});
$("clear").addEventListener("click", () => { snapshot(); fillCanvas(state.background); schedule(); });
$("fill").addEventListener("click", () => { snapshot(); fillCanvas(state.colour); schedule(); });
$("resample").addEventListener("click", () => { state.seed = Math.floor(Math.random() * 2 ** 31); schedule(0); });
$("eval").addEventListener("change", () => schedule(0));
$("engine").addEventListener("change", (e) => {
  state.engine = e.target.value; $("note").textContent = ""; showInfo(state.model); schedule(0);
});
$("webcam").addEventListener("click", toggleWebcam);
$("samples").addEventListener("change", (e) => { if (e.target.value !== "") loadSample(+e.target.value); });
$("model").addEventListener("change", (e) => useModel(state.models[+e.target.value]));
$("upload").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch (err) {
    setStatus(`error: ${file.name} is not an image this browser reads`); e.target.value = ""; return;
  }
  e.target.value = "";  // the same file chosen again is read again
  stopWebcam();
  snapshot();
  $("samples").value = "";
  const scale = Math.min(1, 512 / Math.max(bitmap.width, bitmap.height));  // big photos are shown at 512
  resizeCanvas(Math.round(bitmap.width * scale), Math.round(bitmap.height * scale));
  ctx.imageSmoothingEnabled = state.model.kind !== "labels";
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  schedule(0);
});
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey && e.key === "z") $("undo").click();
  else if (e.ctrlKey && e.key === "y") $("redo").click();
  else if (!e.ctrlKey && e.key === "b") selectTool("brush");
  else if (!e.ctrlKey && e.key === "r") selectTool("rect");
  else if (!e.ctrlKey && e.key === "e") selectTool("eraser");
});

(async function init() {
  const res = await fetch(SITE ? "site.json" : "/api/models");
  const listed = SITE ? (await res.json()).models : await res.json();
  state.models = listed.filter((m) => m.page);  // array models are served by the API alone
  state.models.forEach((m, i) => $("model").add(new Option(m.name, String(i))));
  $("model").disabled = state.models.length < 2;
  if (state.models.length) useModel(state.models[0]);
})();
