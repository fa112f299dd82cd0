// Translating in the page: the model's web graph (`pix2pix export --format web`; see
// pix2pix/inference/web.py for its inputs) in onnxruntime-web. WebGPU where the browser has it, else wasm, with
// threads where the page is cross-origin isolated (its host sends COOP/COEP), else one thread, said in `note`.
// `?ep=wasm` or `?ep=webgpu` and `?threads=N` in the page's address choose for a measurement.
"use strict";

const InPage = (() => {
  let loading = null;
  const sessions = new Map();   // graph URL -> a session's promise
  const queues = new Map();     // graph URL -> the promise of its last run: one run of a session at a time
  const noiseCache = { key: null, masks: null };
  const query = new URLSearchParams(location.search);

  function loadScript(src) {
    return new Promise((ok, fail) => {
      const s = document.createElement("script");
      s.src = src;
      s.onload = ok;
      s.onerror = () => fail(new Error("cannot load " + src));
      document.head.appendChild(s);
    });
  }

  async function hasWebGPU() {
    try { return !!(navigator.gpu && await navigator.gpu.requestAdapter()); } catch (e) { return false; }
  }

  // The runtime, loaded once from `base` (a folder holding onnxruntime-web's files).
  function runtime(base) {
    if (!loading) loading = (async () => {
      const gpu = query.get("ep") !== "wasm" && (query.get("ep") === "webgpu" || await hasWebGPU());
      const root = new URL(base, location.href).href;
      await loadScript(root + (gpu ? "ort.webgpu.min.js" : "ort.wasm.min.js"));
      const isolated = self.crossOriginIsolated === true;
      const asked = Math.max(0, Math.floor(+query.get("threads") || 0));
      const threads = isolated ? (asked || Math.min(4, navigator.hardwareConcurrency || 1)) : 1;
      ort.env.wasm.wasmPaths = root;
      ort.env.wasm.numThreads = threads;
      return { gpu, threads, note: isolated || threads > 1 ? "" :
        "one thread: this page is not cross-origin isolated (its host sends no COOP/COEP headers)" };
    })();
    loading.catch(() => { loading = null; });  // a runtime that failed to load is tried again next time
    return loading;
  }

  function session(web) {
    if (!sessions.has(web.url)) {
      sessions.set(web.url, runtime(web.ort).then((rt) => ort.InferenceSession.create(
        new URL(web.url, location.href).href,
        { executionProviders: rt.gpu ? ["webgpu", "wasm"] : ["wasm"], graphOptimizationLevel: "all" })));
      sessions.get(web.url).catch(() => sessions.delete(web.url));  // a failed load is tried again next time
    }
    return sessions.get(web.url);
  }

  // The side the graph pads n to: the fewest pixels that reach `minimum` and a multiple of `multiple`.
  function padded(n, multiple, minimum) {
    let total = Math.max(minimum - n, 0);
    total += (((-(n + total)) % multiple) + multiple) % multiple;
    return n + total;
  }

  // mulberry32: the page's noise, one stream of `seed` filling the dropout layers in order (web.py's
  // page_noise computes the same numbers).
  function mulberry32(seed) {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6D2B79F5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function noise(web, h, w, seed, evalMode) {
    const ph = padded(h, web.pad_multiple, web.pad_minimum), pw = padded(w, web.pad_multiple, web.pad_minimum);
    const key = [web.url, ph, pw, seed, evalMode].join("|");
    if (noiseCache.key === key) return noiseCache.masks;  // a webcam's frames: the same noise, no flicker
    const next = mulberry32(seed), masks = {};
    for (const layer of web.dropout) {
      const dims = [1, layer.channels, ph / layer.stride, pw / layer.stride];
      const data = new Float32Array(dims[1] * dims[2] * dims[3]);
      const keep = 1 / (1 - layer.p);
      if (evalMode) data.fill(1);
      else for (let i = 0; i < data.length; i++) data[i] = next() >= layer.p ? keep : 0;
      masks[layer.name] = new ort.Tensor("float32", data, dims);
    }
    noiseCache.key = key; noiseCache.masks = masks;
    return masks;
  }

  // ImageData -> (1, C, H, W) in [-1, 1], as the server reads an image (Pillow's grayscale weights for C = 1).
  function toInput(image, channels) {
    const { data, width, height } = image, n = width * height, x = new Float32Array(channels * n);
    for (let i = 0; i < n; i++) {
      const r = data[4 * i], g = data[4 * i + 1], b = data[4 * i + 2];
      if (channels === 1) x[i] = (((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) / 255 - 0.5) / 0.5;
      else for (let c = 0; c < channels; c++) x[c * n + i] = (data[4 * i + c] / 255 - 0.5) / 0.5;
    }
    return new ort.Tensor("float32", x, [1, channels, height, width]);
  }

  // (1, C, H, W) in [-1, 1] -> ImageData, truncated as the server writes 8-bit images.
  function toImage(y, width, height) {
    const channels = y.dims[1], n = width * height, out = new ImageData(width, height), v = y.data;
    const level = (u) => Math.floor((Math.min(1, Math.max(-1, u)) + 1) / 2 * 255);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < 3; c++) out.data[4 * i + c] = level(v[(channels === 1 ? 0 : c) * n + i]);
      out.data[4 * i + 3] = channels === 4 ? level(v[3 * n + i]) : 255;
    }
    return out;
  }

  async function translate(model, image, { evalMode = false, seed = 0 } = {}) {
    const web = model.web, s = await session(web), rt = await runtime(web.ort);
    const feeds = { x: toInput(image, model.in_channels) };
    if (web.inputs.includes("eval")) feeds.eval = new ort.Tensor("float32", new Float32Array([evalMode ? 1 : 0]), [1]);
    Object.assign(feeds, noise(web, image.height, image.width, seed, evalMode));
    let ms = 0;
    const run = (queues.get(web.url) || Promise.resolve()).catch(() => {}).then(async () => {
      const t0 = performance.now();
      const result = await s.run(feeds);
      ms = performance.now() - t0;
      return result;
    });
    const first = !queues.has(web.url);
    queues.set(web.url, run);
    const out = await run;
    const result = toImage(out.y, image.width, image.height);
    out.y.dispose && out.y.dispose();
    return { image: result, ms, note: rt.note,
             engine: (rt.gpu ? "WebGPU" : "wasm") + `, ${rt.threads} thread${rt.threads > 1 ? "s" : ""}` +
                     (first ? "; the first run includes its set-up" : "") };
  }

  return { translate, runtime, padded, mulberry32 };
})();
