// attnviz interactive views (head, model, matrix, text, image) of one AttentionRecord, offline.
// Embedded into the binary by render/html/embed.cmake; the page carries its data as JSON
// (#attnviz-meta) and deflate-packed, quantized weights in base64 chunks (#attnviz-chunk-*).
// Tests drive it through window.attnviz (ready, show, state) and real mouse events.
(function () {
  'use strict';

  const META = JSON.parse(document.getElementById('attnviz-meta').textContent);
  const TOP = (1 << META.bits) - 1;            // code of a non-finite value
  const HEAD_COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f',
                        '#bcbd22', '#17becf', '#393b79', '#ad494a'];
  const NONFINITE = [255, 0, 255];
  const A = window.attnviz = { meta: META, views: {}, timing: {}, lastSave: null, errors: [] };

  // ---- data -------------------------------------------------------------------------------
  const chunkCache = new Map();
  function chunkBytes(id) {
    if (chunkCache.has(id)) return chunkCache.get(id);
    const p = (async () => {
      const el = document.getElementById('attnviz-chunk-' + id);
      if (!el) throw new Error('chunk ' + id + ' is missing from the page');
      const bin = atob(el.textContent.trim());
      const packed = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; ++i) packed[i] = bin.charCodeAt(i);
      const stream = new Blob([packed]).stream().pipeThrough(new DecompressionStream('deflate'));
      return new Uint8Array(await new Response(stream).arrayBuffer());
    })();
    chunkCache.set(id, p);
    return p;
  }

  // Full weights of tensor ti: codes [heads * queries * keys] plus decoding.
  const tensorCache = new Map();
  function tensorData(ti) {
    const t = META.tensors[ti];
    if (!t.chunk) return Promise.resolve(null);
    if (!tensorCache.has(ti)) {
      tensorCache.set(ti, chunkBytes(t.chunk).then(bytes => {
        const codes = META.bits === 16 ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2) : bytes;
        const n = t.queries * t.keys;
        return {
          t, codes, n,
          value(h, q, k) {
            const c = codes[h * n + q * t.keys + k];
            if (c === TOP) return NaN;
            const r = t.ranges[h], u = c / (TOP - 1);  // square-root companded (render/html.cpp)
            return r[0] + (r[1] - r[0]) * u * u;
          },
        };
      }));
    }
    return tensorCache.get(ti);
  }

  const CMAP = new Uint8Array(256 * 3);
  META.cmap.table.forEach((c, i) => { CMAP[3 * i] = c[0]; CMAP[3 * i + 1] = c[1]; CMAP[3 * i + 2] = c[2]; });
  function cmapAt(t) {  // t in [0, 1] -> [r, g, b]; NaN -> magenta
    if (!(t >= 0 || t < 0)) return NONFINITE;
    const i = Math.max(0, Math.min(255, Math.round(t * 255)));
    return [CMAP[3 * i], CMAP[3 * i + 1], CMAP[3 * i + 2]];
  }
  const rgb = c => 'rgb(' + c[0] + ',' + c[1] + ',' + c[2] + ')';

  function tokensOf(axis, n) {
    const tok = axis && META.tokens[axis];
    if (tok && tok.length === n) return tok;
    return Array.from({ length: n }, (_, i) => String(i));
  }
  const fmtv = v => (Number.isFinite(v) ? (Math.abs(v) >= 0.001 || v === 0 ? v.toFixed(4) : v.toExponential(2)) : String(v));

  // ---- small DOM helpers ---------------------------------------------------------------------
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  }
  const SVGNS = 'http://www.w3.org/2000/svg';
  function svgEl(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  function select(options, value, onchange) {
    const s = el('select', { onchange: () => onchange(s.value) });
    for (const [v, label] of options) s.append(el('option', { value: String(v), text: label }));
    s.value = String(value);
    return s;
  }
  const measureCtx = document.createElement('canvas').getContext('2d');
  function textWidth(s, font) { measureCtx.font = font; return measureCtx.measureText(s).width; }
  const FONT = '"DejaVu Sans", "Noto Sans", "Noto Sans CJK SC", sans-serif';

  function download(name, url, type, bytes) {
    A.lastSave = { name, type, bytes };
    const a = el('a', { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
  }
  function saveSvg(svg, name) {
    const text = new XMLSerializer().serializeToString(svg);
    const url = URL.createObjectURL(new Blob([text], { type: 'image/svg+xml' }));
    download(name + '.svg', url, 'svg', text.length);
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }
  function savePngFromSvg(svg, name) {
    const text = new XMLSerializer().serializeToString(svg);
    const w = +svg.getAttribute('width'), h = +svg.getAttribute('height');
    const img = new Image();
    return new Promise((resolve, reject) => {
      img.onload = () => {
        const c = document.createElement('canvas');
        c.width = w * 2; c.height = h * 2;
        const ctx = c.getContext('2d');
        ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, c.width, c.height);
        ctx.scale(2, 2); ctx.drawImage(img, 0, 0);
        const url = c.toDataURL('image/png');
        download(name + '.png', url, 'png', url.length);
        resolve();
      };
      img.onerror = () => reject(new Error('could not draw the SVG for PNG export'));
      img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(text);
    });
  }
  function savePngFromCanvas(c, name) {
    const url = c.toDataURL('image/png');
    download(name + '.png', url, 'png', url.length);
  }
  const baseName = () => (META.source || 'attention').replace(/^.*[\\/]/, '').replace(/\.[^.]*$/, '') || 'attention';

  // ---- matrix: a canvas with zoom, pan, labels on zoom, hover readout, row/column highlight ----
  class MatrixView {
    constructor(root) {
      this.root = root;
      this.readout = el('div', { class: 'readout', text: ' ' });
      this.canvas = el('canvas', { class: 'plot' });
      this.root.append(this.canvas, this.readout);
      this.ctx = this.canvas.getContext('2d');
      this.off = document.createElement('canvas');
      this.hover = null;
      this.pending = false;
      this.data = null;
      this.bind();
    }
    size(w, h) {
      this.cssW = w; this.cssH = h;
      const dpr = window.devicePixelRatio || 1;
      this.canvas.width = Math.round(w * dpr); this.canvas.height = Math.round(h * dpr);
      this.canvas.style.width = w + 'px'; this.canvas.style.height = h + 'px';
      this.dpr = dpr;
    }
    // Shows head h (-1 = mean over heads) of tensor ti.
    async set(ti, h) {
      const t = META.tensors[ti];
      this.ti = ti; this.h = h; this.t = t;
      const d = await tensorData(ti);
      if (this.ti !== ti || this.h !== h) return;  // a newer request won
      this.data = d;
      this.qtok = tokensOf(t.query_axis, t.queries);
      this.ktok = tokensOf(t.key_axis, t.keys);
      if (!d) { this.drawMissing(); return; }
      const n = t.queries * t.keys;
      // One pixel per cell in an offscreen canvas; zoom draws it scaled without smoothing.
      this.off.width = t.keys; this.off.height = t.queries;
      const octx = this.off.getContext('2d');
      const img = octx.createImageData(t.keys, t.queries);
      const px = img.data;
      if (h >= 0) {
        const lut = new Uint8Array(3 * (TOP + 1));
        for (let c = 0; c <= TOP; ++c) {
          const col = c === TOP ? NONFINITE : cmapAt((c / (TOP - 1)) ** 2);
          lut[3 * c] = col[0]; lut[3 * c + 1] = col[1]; lut[3 * c + 2] = col[2];
        }
        const codes = d.codes, base = h * n;
        for (let i = 0; i < n; ++i) {
          const c = 3 * codes[base + i], j = 4 * i;
          px[j] = lut[c]; px[j + 1] = lut[c + 1]; px[j + 2] = lut[c + 2]; px[j + 3] = 255;
        }
        this.valueAt = (q, k) => d.value(h, q, k);
      } else {
        const mean = new Float32Array(n);
        for (let hh = 0; hh < t.heads; ++hh)
          for (let q = 0, i = 0; q < t.queries; ++q)
            for (let k = 0; k < t.keys; ++k, ++i) mean[i] += d.value(hh, q, k) / t.heads;
        let lo = 0, hi = 0;
        for (const v of mean) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
        const span = hi > lo ? hi - lo : 1;
        for (let i = 0; i < n; ++i) {
          const col = cmapAt((mean[i] - lo) / span), j = 4 * i;
          px[j] = col[0]; px[j + 1] = col[1]; px[j + 2] = col[2]; px[j + 3] = 255;
        }
        this.valueAt = (q, k) => mean[q * t.keys + k];
      }
      octx.putImageData(img, 0, 0);
      // Margins fit the longest labels (capped), then the whole matrix fits the plot.
      const lab = s => Math.min(150, textWidth(s, '12px ' + FONT));
      this.ml = 12 + Math.max(24, ...this.qtok.slice(0, 4096).map(lab));
      this.mt = 12 + Math.max(24, ...this.ktok.slice(0, 4096).map(lab)) * 0.8;
      this.reset();
    }
    reset() {
      const pw = this.cssW - this.ml - 8, ph = this.cssH - this.mt - 8;
      this.s = Math.min(pw / this.t.keys, ph / this.t.queries);
      this.ox = 0; this.oy = 0;  // cell coordinates at the plot's top-left corner
      this.request();
    }
    zoom(factor, cx, cy) {  // cx, cy: css px inside the canvas
      if (!this.data) return;
      const pw = this.cssW - this.ml - 8, ph = this.cssH - this.mt - 8;
      const fit = Math.min(pw / this.t.keys, ph / this.t.queries);
      const s2 = Math.max(fit, Math.min(80, this.s * factor));
      const cellX = this.ox + (cx - this.ml) / this.s, cellY = this.oy + (cy - this.mt) / this.s;
      this.s = s2;
      this.ox = cellX - (cx - this.ml) / s2; this.oy = cellY - (cy - this.mt) / s2;
      this.clamp();
      this.request();
    }
    clamp() {
      const pw = this.cssW - this.ml - 8, ph = this.cssH - this.mt - 8;
      this.ox = Math.max(0, Math.min(this.ox, this.t.keys - pw / this.s));
      this.oy = Math.max(0, Math.min(this.oy, this.t.queries - ph / this.s));
      if (this.t.keys * this.s <= pw) this.ox = 0;
      if (this.t.queries * this.s <= ph) this.oy = 0;
    }
    request() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.draw(); });
    }
    drawMissing() {
      const c = this.ctx;
      c.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
      c.fillStyle = '#fff'; c.fillRect(0, 0, this.cssW, this.cssH);
      c.fillStyle = '#667085'; c.font = '14px ' + FONT;
      c.fillText('The full weights of ' + this.t.name + ' were left out (--max-mib ' + META.max_mib + ').', 16, 30);
      this.readout.textContent = ' ';
    }
    draw() {
      if (!this.data) return;
      const t0 = performance.now();
      this.drawCells();
      (A.timing.draws = A.timing.draws || []).push(performance.now() - t0);  // smoothness, for tests
    }
    drawCells() {
      const c = this.ctx, t = this.t, s = this.s;
      const pw = this.cssW - this.ml - 8, ph = this.cssH - this.mt - 8;
      c.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
      c.fillStyle = '#fff'; c.fillRect(0, 0, this.cssW, this.cssH);
      const w = Math.min(pw, (t.keys - this.ox) * s), h = Math.min(ph, (t.queries - this.oy) * s);
      c.save();
      c.beginPath(); c.rect(this.ml, this.mt, w, h); c.clip();
      c.imageSmoothingEnabled = false;
      c.drawImage(this.off, this.ml - this.ox * s, this.mt - this.oy * s, t.keys * s, t.queries * s);
      if (this.hover) {  // row and column highlight
        const [q, k] = this.hover;
        c.fillStyle = 'rgba(255,255,255,0.28)';
        c.fillRect(this.ml, this.mt + (q - this.oy) * s, w, s);
        c.fillRect(this.ml + (k - this.ox) * s, this.mt, s, h);
        c.strokeStyle = '#ff2d55'; c.lineWidth = Math.max(1, Math.min(2, s / 4));
        c.strokeRect(this.ml + (k - this.ox) * s, this.mt + (q - this.oy) * s, s, s);
      }
      c.restore();
      c.strokeStyle = '#98a2b3'; c.lineWidth = 1; c.strokeRect(this.ml - 0.5, this.mt - 0.5, w + 1, h + 1);
      // Labels appear once a cell is tall enough to hold one (only the visible ones are drawn).
      const q0 = Math.floor(this.oy), q1 = Math.min(t.queries, Math.ceil(this.oy + ph / s));
      const k0 = Math.floor(this.ox), k1 = Math.min(t.keys, Math.ceil(this.ox + pw / s));
      const fs = Math.min(12, s - 1);
      c.fillStyle = '#1d1f24';
      if (fs >= 7) {
        c.font = fs + 'px ' + FONT;
        c.textAlign = 'right'; c.textBaseline = 'middle';
        for (let q = q0; q < q1; ++q) {
          c.font = (this.hover && this.hover[0] === q ? 'bold ' : '') + fs + 'px ' + FONT;
          c.fillText(clip(this.qtok[q]), this.ml - 4, this.mt + (q - this.oy + 0.5) * s, this.ml - 8);
        }
        c.textAlign = 'left';
        for (let k = k0; k < k1; ++k) {
          c.save();
          c.translate(this.ml + (k - this.ox + 0.5) * s, this.mt - 4);
          c.rotate(-Math.PI / 3);
          c.font = (this.hover && this.hover[1] === k ? 'bold ' : '') + fs + 'px ' + FONT;
          c.fillText(clip(this.ktok[k]), 0, 0, this.mt * 1.1);
          c.restore();
        }
      } else {
        c.font = '11px ' + FONT; c.fillStyle = '#667085';
        c.textAlign = 'left'; c.textBaseline = 'bottom';
        c.fillText('rows: queries ' + q0 + '–' + (q1 - 1) + ' · columns: keys ' + k0 + '–' + (k1 - 1) +
                   '  (zoom in for labels)', 4, this.mt - 4, this.cssW - 8);
      }
    }
    cellAt(ev) {
      const r = this.canvas.getBoundingClientRect();
      const x = ev.clientX - r.left, y = ev.clientY - r.top;
      const k = Math.floor(this.ox + (x - this.ml) / this.s), q = Math.floor(this.oy + (y - this.mt) / this.s);
      if (x < this.ml || y < this.mt || k < 0 || q < 0 || k >= this.t.keys || q >= this.t.queries) return null;
      return [q, k];
    }
    bind() {
      const cv = this.canvas;
      let drag = null;
      cv.addEventListener('wheel', ev => {
        ev.preventDefault();
        const r = cv.getBoundingClientRect();
        this.zoom(Math.exp(-ev.deltaY * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
      }, { passive: false });
      cv.addEventListener('mousedown', ev => { drag = { x: ev.clientX, y: ev.clientY, ox: this.ox, oy: this.oy }; cv.classList.add('dragging'); });
      window.addEventListener('mouseup', () => { drag = null; cv.classList.remove('dragging'); });
      cv.addEventListener('mousemove', ev => {
        if (!this.data) return;
        if (drag) {
          this.ox = drag.ox - (ev.clientX - drag.x) / this.s; this.oy = drag.oy - (ev.clientY - drag.y) / this.s;
          this.clamp(); this.request();
        }
        const cell = this.cellAt(ev);
        const same = cell && this.hover && cell[0] === this.hover[0] && cell[1] === this.hover[1];
        if (same) return;
        this.hover = cell;
        if (cell) {
          const [q, k] = cell;
          this.readout.textContent = 'query ' + q + ' ' + JSON.stringify(this.qtok[q]) + '  →  key ' + k + ' ' +
            JSON.stringify(this.ktok[k]) + ':  ' + fmtv(this.valueAt(q, k));
        } else {
          this.readout.textContent = ' ';
        }
        this.request();
      });
      cv.addEventListener('mouseleave', () => { this.hover = null; this.readout.textContent = ' '; this.request(); });
      cv.addEventListener('dblclick', () => this.reset());
    }
    // SVG for small matrices (every cell a rect), else null.
    toSvg() {
      const t = this.t;
      if (!this.data || t.queries * t.keys > 128 * 128) return null;
      const cell = 18, ml = this.ml, mt = this.mt;
      const svg = svgEl('svg', { xmlns: SVGNS, width: ml + t.keys * cell + 10, height: mt + t.queries * cell + 10 });
      svg.append(svgEl('rect', { x: 0, y: 0, width: '100%', height: '100%', fill: '#fff' }));
      for (let q = 0; q < t.queries; ++q) {
        for (let k = 0; k < t.keys; ++k) {
          const d = this.off.getContext('2d').getImageData(k, q, 1, 1).data;
          svg.append(svgEl('rect', { x: ml + k * cell, y: mt + q * cell, width: cell, height: cell,
            fill: 'rgb(' + d[0] + ',' + d[1] + ',' + d[2] + ')' }));
        }
        const tx = svgEl('text', { x: ml - 4, y: mt + (q + 0.5) * cell, 'text-anchor': 'end', 'dominant-baseline': 'middle',
          'font-size': 12, 'font-family': 'DejaVu Sans, sans-serif' });
        tx.textContent = this.qtok[q];
        svg.append(tx);
      }
      for (let k = 0; k < t.keys; ++k) {
        const x = ml + (k + 0.5) * cell, y = mt - 4;
        const tx = svgEl('text', { x, y, transform: 'rotate(-60 ' + x + ' ' + y + ')', 'font-size': 12,
          'font-family': 'DejaVu Sans, sans-serif' });
        tx.textContent = this.ktok[k];
        svg.append(tx);
      }
      return svg;
    }
  }
  const clip = s => (s.length > 24 ? s.slice(0, 23) + '…' : s);

  function headOptions(t, withMean) {
    const o = [];
    if (withMean) o.push([-1, 'mean of heads']);
    for (let h = 0; h < t.heads; ++h) o.push([h, 'head ' + h]);
    return o;
  }
  const tensorOptions = filter => META.tensors.map((t, i) => [i, t.name + (t.chunk ? '' : ' (left out)')])
    .filter(([i]) => !filter || filter(META.tensors[i]));

  // ---- head view: two token columns, one line per (query, key) and head ------------------------
  function headView(root) {
    const st = { ti: 0, heads: new Set(), hot: null };
    const first = META.tensors.findIndex(t => t.chunk);
    st.ti = first >= 0 ? first : 0;
    const controls = el('div', { class: 'controls' });
    const headsBox = el('span', { class: 'heads' });
    const box = el('div', { class: 'svgbox' });
    const svg = svgEl('svg', { id: 'head-svg' });
    box.append(svg);
    const hint = el('div', { class: 'hint', text: 'Hover a token to see only its lines; line opacity is the weight. ' +
      'Lines below 1% of a weight of 1 are not drawn.' });
    const readout = el('div', { class: 'readout', text: ' ' });
    root.append(controls, hint, box, readout);
    let data = null, geom = null;

    controls.append(el('label', {}, 'Layer / tensor ', select(tensorOptions(), st.ti, v => { st.ti = +v; load(); })),
                    el('span', {}, 'Heads '), headsBox,
                    el('button', { class: 'small', text: 'all', onclick: () => setHeads(true) }),
                    el('button', { class: 'small', text: 'none', onclick: () => setHeads(false) }));
    function setHeads(all) {
      const t = META.tensors[st.ti];
      st.heads = new Set(all ? [...Array(t.heads).keys()] : []);
      headsBox.querySelectorAll('input').forEach(i => { i.checked = all; });
      drawLines();
    }
    async function load() {
      const t = META.tensors[st.ti];
      st.heads = new Set([...Array(t.heads).keys()]);
      headsBox.replaceChildren(...[...Array(t.heads).keys()].map(h => {
        const cb = el('input', { type: 'checkbox', 'data-head': h });
        cb.checked = true;
        cb.addEventListener('change', () => { cb.checked ? st.heads.add(h) : st.heads.delete(h); drawLines(); });
        return el('label', {}, cb, el('span', { class: 'swatch', style: 'background:' + HEAD_COLOURS[h % HEAD_COLOURS.length] }), String(h));
      }));
      data = await tensorData(st.ti);
      layout();
    }
    function layout() {
      const t = META.tensors[st.ti];
      svg.replaceChildren();
      if (!data) {
        svg.setAttribute('width', 600); svg.setAttribute('height', 40);
        const tx = svgEl('text', { x: 10, y: 24 });
        tx.textContent = 'The full weights of ' + t.name + ' were left out (--max-mib ' + META.max_mib + ').';
        svg.append(tx);
        return;
      }
      const qt = tokensOf(t.query_axis, t.queries), kt = tokensOf(t.key_axis, t.keys);
      const font = '13px ' + FONT, row = 20, top = 28;
      const wq = Math.min(220, Math.max(30, ...qt.map(s => textWidth(s, font)))) + 10;
      const wk = Math.min(220, Math.max(30, ...kt.map(s => textWidth(s, font)))) + 10 + 90;  // + room for the header
      const gap = 240;
      const W = wq + gap + wk + 20, H = top + Math.max(t.queries, t.keys) * row + 10;
      svg.setAttribute('width', W); svg.setAttribute('height', H);
      svg.setAttribute('xmlns', SVGNS);
      svg.append(svgEl('rect', { x: 0, y: 0, width: W, height: H, fill: '#fff' }));
      const hdr = (x, anchor, s) => { const e = svgEl('text', { x, y: 16, 'text-anchor': anchor, fill: '#667085', 'font-size': 12 }); e.textContent = s; svg.append(e); };
      hdr(10, 'start', 'queries' + (t.query_axis ? ' (' + t.query_axis + ')' : ''));
      hdr(10 + wq + gap, 'start', 'keys' + (t.key_axis ? ' (' + t.key_axis + ')' : ''));
      const lines = svgEl('g', { id: 'head-lines' });
      svg.append(lines);
      geom = { t, lines, x0: 10 + wq - 4, x1: 10 + wq + gap - 6, y: i => top + (i + 0.5) * row, qEls: [], kEls: [] };
      const mk = (s, i, side) => {
        const x = side === 'q' ? 10 + wq - 10 : 10 + wq + gap;
        const e = svgEl('text', { x, y: geom.y(i), 'text-anchor': side === 'q' ? 'end' : 'start',
          'dominant-baseline': 'middle', class: 'tok-' + side, 'data-i': i, 'font-family': 'DejaVu Sans, sans-serif' });
        e.textContent = clip(s);
        e.addEventListener('mouseenter', () => { st.hot = [side, i]; drawLines(); });
        e.addEventListener('mouseleave', () => { st.hot = null; drawLines(); });
        svg.append(e);
        return e;
      };
      geom.qEls = qt.map((s, i) => mk(s, i, 'q'));
      geom.kEls = kt.map((s, i) => mk(s, i, 'k'));
      drawLines();
    }
    function drawLines() {
      if (!data || !geom) return;
      const { t, lines } = geom;
      const frag = document.createDocumentFragment();
      const hot = st.hot;
      let count = 0;
      const cap = 20000;
      const cand = [];
      for (const h of st.heads) {
        for (let q = 0; q < t.queries; ++q) {
          if (hot && hot[0] === 'q' && hot[1] !== q) continue;
          for (let k = 0; k < t.keys; ++k) {
            if (hot && hot[0] === 'k' && hot[1] !== k) continue;
            const w = data.value(h, q, k);
            if (!(w >= 0.01) && Number.isFinite(w)) continue;
            cand.push([h, q, k, w]);
          }
        }
      }
      if (cand.length > cap) cand.sort((a, b) => (b[3] || 1) - (a[3] || 1)).length = cap;
      for (const [h, q, k, w] of cand) {
        const ok = Number.isFinite(w);
        frag.append(svgEl('line', { x1: geom.x0, y1: geom.y(q), x2: geom.x1, y2: geom.y(k),
          stroke: ok ? HEAD_COLOURS[h % HEAD_COLOURS.length] : '#ff00ff', 'stroke-width': 2,
          'stroke-opacity': ok ? Math.min(1, w).toFixed(3) : 1, 'data-q': q, 'data-k': k, 'data-h': h }));
        ++count;
      }
      lines.replaceChildren(frag);
      geom.qEls.forEach((e, i) => e.setAttribute('class', 'tok-q' + (hot ? (hot[0] === 'q' && hot[1] === i ? ' hot' : ' dim') : '')));
      geom.kEls.forEach((e, i) => e.setAttribute('class', 'tok-k' + (hot ? (hot[0] === 'k' && hot[1] === i ? ' hot' : ' dim') : '')));
      if (hot) {
        const top = cand.filter(c => Number.isFinite(c[3])).sort((a, b) => b[3] - a[3]).slice(0, 3);
        const qt = tokensOf(t.query_axis, t.queries), kt = tokensOf(t.key_axis, t.keys);
        readout.textContent = (hot[0] === 'q' ? 'query ' + hot[1] + ' ' + JSON.stringify(qt[hot[1]]) : 'key ' + hot[1] + ' ' +
          JSON.stringify(kt[hot[1]])) + ': ' + count + ' lines; strongest ' +
          top.map(([h, q, k, w]) => 'h' + h + ' ' + (hot[0] === 'q' ? JSON.stringify(kt[k]) : JSON.stringify(qt[q])) + ' ' + fmtv(w)).join(', ');
      } else {
        readout.textContent = count + ' lines';
      }
    }
    return {
      show: load,
      save: async kind => (kind === 'svg' ? saveSvg(svg, baseName() + '-head') : savePngFromSvg(svg, baseName() + '-head')),
      svgAvailable: () => true,
      state: st,
    };
  }

  // ---- model view: layer x head thumbnails; a click opens the head as a large matrix -----------
  function modelView(root) {
    const maxHeads = Math.max(...META.tensors.map(t => t.heads));
    const grid = el('div', { class: 'grid', style: 'grid-template-columns: auto repeat(' + maxHeads + ', 60px)' });
    const detail = el('div', { class: 'matrix' });
    const title = el('div', { class: 'hint', text: 'Click a thumbnail to open it large. Wheel: zoom, drag: pan, double-click: fit.' });
    const right = el('div', {}, title, detail);
    root.append(el('div', { class: 'model' }, grid, right));
    const mv = new MatrixView(detail);
    let built = false, selected = null;
    async function build() {
      const thumbs = await chunkBytes('thumbs');
      grid.append(el('div', {}));
      for (let h = 0; h < maxHeads; ++h) grid.append(el('div', { class: 'collabel', text: 'h' + h }));
      META.tensors.forEach((t, ti) => {
        grid.append(el('div', { class: 'rowlabel', text: t.name }));
        const { rows, cols, offset } = t.thumb;
        for (let h = 0; h < maxHeads; ++h) {
          if (h >= t.heads) { grid.append(el('div', {})); continue; }
          const c = el('canvas', { class: 'thumb' + (t.chunk ? '' : ' missing'), 'data-tensor': ti, 'data-head': h,
            title: t.name + ' head ' + h + (t.chunk ? '' : ' (full weights left out)') });
          c.width = cols; c.height = rows;
          const cx = c.getContext('2d'), img = cx.createImageData(cols, rows);
          const base = offset + h * rows * cols;
          for (let i = 0; i < rows * cols; ++i) {
            const v = thumbs[base + i], col = v === 255 ? NONFINITE : cmapAt(v / 254);
            img.data[4 * i] = col[0]; img.data[4 * i + 1] = col[1]; img.data[4 * i + 2] = col[2]; img.data[4 * i + 3] = 255;
          }
          cx.putImageData(img, 0, 0);
          c.addEventListener('click', () => open(ti, h, c));
          grid.append(c);
        }
      });
      built = true;
    }
    function open(ti, h, c) {
      if (selected) selected.classList.remove('selected');
      selected = c || grid.querySelector('canvas[data-tensor="' + ti + '"][data-head="' + h + '"]');
      if (selected) selected.classList.add('selected');
      title.textContent = META.tensors[ti].name + ', head ' + h + ' — wheel: zoom, drag: pan, double-click: fit';
      return mv.set(ti, h);
    }
    return {
      async show() {
        if (!built) await build();
        // Beside the grid when there is room, else below it at full width.
        const beside = window.innerWidth - grid.getBoundingClientRect().width - 80;
        const side = beside >= 480 ? Math.min(760, beside) : Math.max(360, Math.min(760, window.innerWidth - 40));
        mv.size(side, side);
        if (!selected) {
          const ti = Math.max(0, META.tensors.findIndex(t => t.chunk));
          await open(ti, 0);
        } else if (mv.data) {
          mv.reset();  // resizing cleared the canvas
        }
      },
      open, matrix: mv,
      save: kind => { if (kind === 'svg') { const s = mv.toSvg(); if (s) saveSvg(s, baseName() + '-model'); } else savePngFromCanvas(mv.canvas, baseName() + '-matrix'); },
      svgAvailable: () => !!mv.t && mv.t.queries * mv.t.keys <= 128 * 128,
    };
  }

  // ---- matrix view for long inputs ---------------------------------------------------------------
  function matrixView(root) {
    const st = { ti: Math.max(0, META.tensors.findIndex(t => t.chunk)), h: 0 };
    const controls = el('div', { class: 'controls' });
    const box = el('div', { class: 'matrix' });
    root.append(controls, box);
    const mv = new MatrixView(box);
    let headSel = null;
    const rebuildHeads = () => {
      const s = select(headOptions(META.tensors[st.ti], true), st.h, v => { st.h = +v; mv.set(st.ti, st.h); });
      if (headSel) headSel.replaceWith(s);
      headSel = s;
    };
    rebuildHeads();
    controls.append(
      el('label', {}, 'Tensor ', select(tensorOptions(), st.ti, v => { st.ti = +v; st.h = 0; rebuildHeads(); mv.set(st.ti, st.h); })),
      el('label', {}, 'Head ', headSel),
      el('button', { class: 'small', text: 'zoom +', onclick: () => mv.zoom(2, mv.ml + (mv.cssW - mv.ml) / 2, mv.mt + (mv.cssH - mv.mt) / 2) }),
      el('button', { class: 'small', text: 'zoom −', onclick: () => mv.zoom(0.5, mv.ml + (mv.cssW - mv.ml) / 2, mv.mt + (mv.cssH - mv.mt) / 2) }),
      el('button', { class: 'small', text: 'fit', onclick: () => mv.reset() }),
      el('span', { class: 'hint', text: 'wheel: zoom at the pointer, drag: pan; labels appear when cells are large enough' }));
    return {
      async show() {
        mv.size(Math.max(480, Math.min(980, window.innerWidth - 40)), Math.max(420, Math.min(860, window.innerHeight - 170)));
        await mv.set(st.ti, st.h);
      },
      matrix: mv, state: st,
      save: kind => { if (kind === 'svg') { const s = mv.toSvg(); if (s) saveSvg(s, baseName() + '-matrix'); } else savePngFromCanvas(mv.canvas, baseName() + '-matrix'); },
      svgAvailable: () => !!mv.t && mv.t.queries * mv.t.keys <= 128 * 128,
    };
  }

  // ---- text view: tokens shaded by pooling / CLS attention ----------------------------------------
  const CLS_RE = /^(\[CLS\]|<s>|<cls>|CLS|\[cls\])$/;
  function textCandidates() {
    const pooling = META.tensors.map((t, i) => i).filter(i => META.tensors[i].queries === 1);
    return pooling.concat(META.tensors.map((t, i) => i).filter(i => {
      const t = META.tensors[i];
      if (t.queries === 1) return false;
      const qt = t.query_axis && META.tokens[t.query_axis];
      return !!(qt && qt.length && CLS_RE.test(qt[0]));
    }));
  }
  function textView(root) {
    const cands = textCandidates();
    const st = { ti: cands[0], h: -1 };
    const controls = el('div', { class: 'controls' });
    const body = el('div', { class: 'textview', id: 'text-body' });
    const readout = el('div', { class: 'readout', text: ' ' });
    const legend = el('div', { class: 'legend' });
    root.append(controls, body, readout, legend, el('div', { class: 'hint', text:
      'Shade: weight divided by the largest weight in the sentence. Query row 0 (CLS) of self-attention, or the pooling query.' }));
    let headSel = null, items = [];
    const rebuildHeads = () => {
      const s = select(headOptions(META.tensors[st.ti], true), st.h, v => { st.h = +v; draw(); });
      if (headSel) headSel.replaceWith(s);
      headSel = s;
    };
    rebuildHeads();
    controls.append(el('label', {}, 'Tensor ', select(tensorOptions(t => cands.includes(META.tensors.indexOf(t))), st.ti,
      v => { st.ti = +v; st.h = -1; rebuildHeads(); draw(); })), el('label', {}, 'Head ', headSel));
    function shade(x) {  // white -> colormap's dark end, as the static text view does
      const c = cmapAt(1 - x);
      return [0, 1, 2].map(i => Math.round(255 * (1 - x) + c[i] * x));
    }
    async function draw() {
      const t = META.tensors[st.ti];
      const d = await tensorData(st.ti);
      body.replaceChildren();
      if (!d) { body.textContent = 'The full weights of ' + t.name + ' were left out (--max-mib ' + META.max_mib + ').'; return; }
      const kt = tokensOf(t.key_axis, t.keys);
      const w = kt.map((_, k) => {
        if (st.h >= 0) return d.value(st.h, 0, k);
        let s = 0;
        for (let h = 0; h < t.heads; ++h) s += d.value(h, 0, k);
        return s / t.heads;
      });
      const max = Math.max(1e-12, ...w.filter(Number.isFinite));
      items = kt.map((s, k) => ({ s, w: w[k], x: Number.isFinite(w[k]) ? Math.max(0, w[k]) / max : NaN }));
      items.forEach((it, k) => {
        const bg = Number.isFinite(it.x) ? shade(it.x) : NONFINITE;
        const lum = 0.2126 * bg[0] + 0.7152 * bg[1] + 0.0722 * bg[2];
        const sp = el('span', { class: 'tok', 'data-i': k, 'data-w': String(it.w),
          style: 'background:' + rgb(bg) + ';color:' + (lum < 120 ? '#fff' : '#111') });
        sp.textContent = it.s;
        sp.addEventListener('mouseenter', () => { sp.classList.add('hot'); readout.textContent = 'token ' + k + ' ' + JSON.stringify(it.s) + ': weight ' + fmtv(it.w) + ' (shade ' + fmtv(it.x) + ')'; });
        sp.addEventListener('mouseleave', () => { sp.classList.remove('hot'); readout.textContent = ' '; });
        body.append(sp, ' ');
      });
      const lc = el('canvas', { width: 160, height: 10 });
      const lx = lc.getContext('2d');
      for (let i = 0; i < 160; ++i) { lx.fillStyle = rgb(shade(i / 159)); lx.fillRect(i, 0, 1, 10); }
      legend.replaceChildren('0', lc, 'max ' + fmtv(max));
    }
    // The same page as vector (SVG) or pixels (PNG): tokens wrapped at 720 px.
    function toSvg() {
      const font = '15px ' + FONT, W = 760, lh = 30;
      let x = 10, y = 10;
      const parts = [];
      for (const it of items) {
        const w = textWidth(it.s, font) + 8;
        if (x + w > W - 10 && x > 10) { x = 10; y += lh; }
        parts.push([x, y, w, it]);
        x += w + 4;
      }
      const svg = svgEl('svg', { xmlns: SVGNS, width: W, height: y + lh + 10 });
      svg.append(svgEl('rect', { x: 0, y: 0, width: '100%', height: '100%', fill: '#fff' }));
      for (const [px, py, w, it] of parts) {
        const bg = Number.isFinite(it.x) ? shade(it.x) : NONFINITE;
        const lum = 0.2126 * bg[0] + 0.7152 * bg[1] + 0.0722 * bg[2];
        svg.append(svgEl('rect', { x: px, y: py, width: w, height: lh - 6, rx: 3, fill: rgb(bg) }));
        const tx = svgEl('text', { x: px + 4, y: py + 18, 'font-size': 15, 'font-family': 'DejaVu Sans, sans-serif', fill: lum < 120 ? '#fff' : '#111' });
        tx.textContent = it.s;
        svg.append(tx);
      }
      return svg;
    }
    return {
      show: draw, state: st,
      save: kind => (kind === 'svg' ? saveSvg(toSvg(), baseName() + '-text') : savePngFromSvg(toSvg(), baseName() + '-text')),
      svgAvailable: () => true,
    };
  }

  // ---- image view: attention over the input image, per head / method, with opacity --------------
  function imageView(root) {
    const im = META.image;
    const layers = META.tensors.map((t, i) => i).filter(i => {
      const t = META.tensors[i];
      return t.keys === im.prefix + im.patch_rows * im.patch_cols && t.queries > 0;
    });
    const methods = [['cls', 'attention of query 0 (CLS)']].concat(im.maps.map((m, i) => ['map' + i, m.name]));
    const st = { method: im.maps.length ? 'map0' : 'cls', ti: layers[layers.length - 1], h: -1, alpha: 0.6 };
    const controls = el('div', { class: 'controls' });
    const canvas = el('canvas', { id: 'image-canvas' });
    const readout = el('div', { class: 'readout', text: ' ' });
    const legend = el('div', { class: 'legend' });
    root.append(controls, el('div', { class: 'imageview' }, canvas), readout, legend);
    let headSel = null, layerSel = null;
    const rebuild = () => {
      const t = META.tensors[st.ti];
      const hs = select(headOptions(t, true), st.h, v => { st.h = +v; draw(); });
      if (headSel) headSel.replaceWith(hs);
      headSel = hs;
      headSel.disabled = layerSel.disabled = st.method !== 'cls';
    };
    layerSel = select(tensorOptions(t => layers.includes(META.tensors.indexOf(t))), st.ti, v => { st.ti = +v; st.h = -1; rebuild(); draw(); });
    const alpha = el('input', { type: 'range', min: 0, max: 1, step: 0.05, value: st.alpha, id: 'image-alpha' });
    alpha.addEventListener('input', () => { st.alpha = +alpha.value; draw(); });
    rebuild();
    controls.append(el('label', {}, 'Method ', select(methods, st.method, v => { st.method = v; rebuild(); draw(); })),
                    el('label', {}, 'Layer ', layerSel), el('label', {}, 'Head ', headSel), el('label', {}, 'Opacity ', alpha));
    let pixels = null;
    async function patchMap() {
      const R = im.patch_rows, C = im.patch_cols;
      if (st.method !== 'cls') return im.maps[+st.method.slice(3)].values.map(v => (v === null ? NaN : v));
      const t = META.tensors[st.ti], d = await tensorData(st.ti);
      if (!d) return null;
      const out = new Array(R * C).fill(0);
      const hs = st.h >= 0 ? [st.h] : [...Array(t.heads).keys()];
      for (const h of hs) for (let p = 0; p < R * C; ++p) out[p] += d.value(h, 0, im.prefix + p) / hs.length;
      return out;
    }
    async function draw() {
      if (!pixels) pixels = await chunkBytes('image');
      const scale = Math.max(1, Math.floor(420 / Math.max(im.width, im.height)));
      const W = im.width * scale, H = im.height * scale;
      canvas.width = W; canvas.height = H;
      const c = canvas.getContext('2d');
      const base = document.createElement('canvas');
      base.width = im.width; base.height = im.height;
      const bimg = base.getContext('2d').createImageData(im.width, im.height);
      for (let i = 0; i < pixels.length; ++i) { const v = pixels[i]; bimg.data.set([v, v, v, 255], 4 * i); }
      base.getContext('2d').putImageData(bimg, 0, 0);
      c.imageSmoothingEnabled = false;
      c.drawImage(base, 0, 0, W, H);
      const map = await patchMap();
      if (!map) { readout.textContent = 'The full weights of this layer were left out (--max-mib ' + META.max_mib + ').'; return; }
      const fin = map.filter(Number.isFinite);
      const lo = Math.min(0, ...fin), hi = Math.max(...fin);
      const ov = document.createElement('canvas');
      ov.width = im.patch_cols; ov.height = im.patch_rows;
      const oimg = ov.getContext('2d').createImageData(im.patch_cols, im.patch_rows);
      map.forEach((v, p) => { const col = cmapAt(hi > lo ? (v - lo) / (hi - lo) : 0); oimg.data.set([col[0], col[1], col[2], 255], 4 * p); });
      ov.getContext('2d').putImageData(oimg, 0, 0);
      c.globalAlpha = st.alpha;
      c.imageSmoothingEnabled = true;
      c.drawImage(ov, 0, 0, W, H);
      c.globalAlpha = 1;
      A.state.imageMap = map;
      readout.textContent = (st.method === 'cls' ? META.tensors[st.ti].name + (st.h >= 0 ? ', head ' + st.h : ', mean of heads')
        : im.maps[+st.method.slice(3)].name) + ': max ' + fmtv(hi) + ' on a ' + im.patch_rows + 'x' + im.patch_cols + ' patch grid';
      const lc = el('canvas', { width: 160, height: 10 }), lx = lc.getContext('2d');
      for (let i = 0; i < 160; ++i) { lx.fillStyle = rgb(cmapAt(i / 159)); lx.fillRect(i, 0, 1, 10); }
      legend.replaceChildren(fmtv(lo), lc, fmtv(hi));
      const lab = META.metadata && (META.metadata.label || META.metadata.prediction);
      if (lab) legend.append('   label ' + (META.metadata.label || '?') + ', prediction ' + (META.metadata.prediction || '?'));
    }
    canvas.addEventListener('mousemove', ev => {
      if (!A.state.imageMap) return;
      const r = canvas.getBoundingClientRect();
      const pc = Math.floor((ev.clientX - r.left) / r.width * im.patch_cols), pr = Math.floor((ev.clientY - r.top) / r.height * im.patch_rows);
      if (pc < 0 || pr < 0 || pc >= im.patch_cols || pr >= im.patch_rows) return;
      readout.textContent = 'patch (' + pr + ', ' + pc + '): ' + fmtv(A.state.imageMap[pr * im.patch_cols + pc]);
    });
    return {
      show: draw, state: st,
      save: () => savePngFromCanvas(canvas, baseName() + '-image'),
      svgAvailable: () => false,
    };
  }

  // ---- page ------------------------------------------------------------------------------------------
  A.state = {};
  function build() {
    const app = document.getElementById('app');
    app.replaceChildren();
    const md = META.metadata || {};
    const facts = [];
    for (const k of ['model', 'attention', 'label', 'prediction', 'score']) if (md[k]) facts.push(k + ' ' + md[k]);
    const nvals = META.tensors.reduce((s, t) => s + t.heads * t.queries * t.keys, 0);
    facts.push(META.tensors.length + ' tensors, ' + nvals.toLocaleString('en') + ' weights stored at ' + META.bits + ' bits');
    app.append(el('header', {}, el('h1', { text: META.title }), el('div', { class: 'meta', text: facts.join(' · ') })));
    if (META.left_out.length)
      app.append(el('div', { class: 'banner', id: 'left-out', text: 'Left out to stay under --max-mib ' + META.max_mib +
        ' (thumbnails kept): full weights of ' + META.left_out.join('; ') }));
    const nf = META.tensors.reduce((s, t) => s + t.nonfinite, 0);
    if (nf) app.append(el('div', { class: 'banner', text: nf + ' weights are NaN or infinite (drawn magenta).' }));

    const kinds = [['head', 'Head view', headView], ['model', 'Model view', modelView], ['matrix', 'Matrix', matrixView]];
    if (textCandidates().length) kinds.push(['text', 'Text', textView]);
    if (META.image && META.image.patch_rows > 0 && META.tensors.some(t => t.keys === META.image.prefix + META.image.patch_rows * META.image.patch_cols))
      kinds.push(['image', 'Image', imageView]);
    const nav = el('nav', { class: 'tabs' });
    const sections = {};
    const pngBtn = el('button', { class: 'small save', id: 'save-png', text: 'Save PNG', onclick: () => A.save('png') });
    const svgBtn = el('button', { class: 'small save', id: 'save-svg', text: 'Save SVG', onclick: () => A.save('svg') });
    for (const [id, label, make] of kinds) {
      const sec = el('section', { class: 'view', id: 'view-' + id });
      sections[id] = { sec, make, tab: el('button', { class: 'tab', 'data-view': id, text: label, onclick: () => A.show(id) }) };
      nav.append(sections[id].tab);
    }
    nav.append(el('span', { class: 'spacer' }), pngBtn, ' ', svgBtn);
    app.append(nav);
    for (const id in sections) app.append(sections[id].sec);

    A.current = null;
    A.show = async id => {
      const s = sections[id];
      if (!s) throw new Error('no view ' + id + ' for this record');
      for (const k in sections) { sections[k].sec.classList.toggle('active', k === id); sections[k].tab.classList.toggle('active', k === id); }
      if (!A.views[id]) A.views[id] = s.make(s.sec);
      A.current = id;
      if (location.hash.slice(1) !== id) history.replaceState(null, '', '#' + id);
      await A.views[id].show();
      svgBtn.disabled = !A.views[id].svgAvailable();
      A.timing[id] = performance.now();
      return id;
    };
    A.save = kind => A.views[A.current].save(kind);
    A.kinds = kinds.map(k => k[0]);
    const big = Math.max(...META.tensors.map(t => Math.max(t.queries, t.keys)));
    const want = location.hash.slice(1);
    const start = sections[want] ? want : (sections.image ? 'image' : (big <= 96 ? 'head' : 'model'));
    return A.show(start);
  }
  A.ready = build().then(v => { document.body.dataset.ready = '1'; return v; }, err => {
    A.errors.push(String(err));
    document.getElementById('app').append(el('div', { class: 'error', text: 'attnviz: ' + err }));
    document.body.dataset.ready = 'error';
    throw err;
  });
})();
