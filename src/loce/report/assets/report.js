/* loce report: filters, sortable tables and the interactive LoCE map.
   Plain JavaScript, no dependencies. Text from data is only ever set through textContent / attributes. */
(function () {
  "use strict";
  var DIMS = ["model", "layer", "concept"];
  var dataNode = document.getElementById("loce-data");
  var data = dataNode ? JSON.parse(dataNode.textContent) : { colors: {}, maps: [] };
  var colors = data.colors || {};
  var state = { model: "", layer: "", concept: "" };
  var maps = [];

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function swatch(concept) {
    var s = make("span", "swatch");
    s.style.background = colors[concept] || "#999";
    return s;
  }

  /* ---------- filters ---------- */
  function matches(node) {
    return DIMS.every(function (dim) {
      var value = node.getAttribute("data-" + dim);
      return !state[dim] || value === null || value === state[dim];
    });
  }

  function some(nodes, test) { return Array.prototype.some.call(nodes, test); }
  function visible(node) { return !node.hidden; }

  function applyFilters() {
    document.querySelectorAll("[data-filterable]").forEach(function (node) { node.hidden = !matches(node); });
    document.querySelectorAll(".table-card").forEach(function (card) {
      var rows = card.querySelectorAll("tr[data-filterable]");
      if (rows.length && !some(rows, visible)) card.hidden = true;
    });
    document.querySelectorAll(".map-card").forEach(function (card) {
      var tabs = card.querySelectorAll(".map-tab");
      var active = card.querySelector(".map-tab.active");
      if (!active || active.hidden) active = Array.prototype.filter.call(tabs, visible)[0] || null;
      showTab(card, active);
      card.hidden = !active;
    });
    document.querySelectorAll("section.section").forEach(function (section) {
      var note = section.querySelector(".empty-note");
      if (!note) return;
      var cards = section.querySelectorAll(".card");
      note.hidden = cards.length === 0 || some(cards, visible);
    });
    document.querySelectorAll("select[data-filter]").forEach(function (select) {
      var dim = select.getAttribute("data-filter");
      select.value = state[dim];
      select.classList.toggle("set", state[dim] !== "");
    });
    document.querySelectorAll(".concept-chip").forEach(function (chip) {
      chip.classList.toggle("active", chip.getAttribute("data-concept-pick") === state.concept);
    });
    maps.forEach(function (m) { m.closeTooltip(); m.highlightConcept(state.concept); });
  }

  /* ---------- map tabs ---------- */
  function showTab(card, tab) {
    var index = tab ? tab.getAttribute("data-tab") : null;
    card.querySelectorAll(".map-tab").forEach(function (t) {
      t.classList.toggle("active", t === tab);
      t.setAttribute("aria-selected", t === tab ? "true" : "false");
    });
    card.querySelectorAll(".map-pane").forEach(function (pane) {
      pane.classList.toggle("inactive", pane.getAttribute("data-pane") !== index);
    });
    if (typeof activateVisibleMaps === "function" && maps.length) activateVisibleMaps();
  }
  document.querySelectorAll(".map-card").forEach(function (card) {
    card.querySelectorAll(".map-tab").forEach(function (tab) {
      tab.addEventListener("click", function () { showTab(card, tab); });
    });
  });

  document.querySelectorAll("select[data-filter]").forEach(function (select) {
    select.addEventListener("change", function () {
      state[select.getAttribute("data-filter")] = select.value;
      applyFilters();
    });
  });
  document.querySelectorAll(".concept-chip").forEach(function (chip) {
    chip.addEventListener("click", function () {
      var name = chip.getAttribute("data-concept-pick");
      state.concept = state.concept === name ? "" : name;
      applyFilters();
    });
  });

  /* ---------- sortable tables ---------- */
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th").forEach(function (th) {
      th.addEventListener("click", function () {
        var col = Number(th.getAttribute("data-col"));
        var asc = !th.classList.contains("sorted-asc");
        table.querySelectorAll("th").forEach(function (other) { other.classList.remove("sorted-asc", "sorted-desc"); });
        th.classList.add(asc ? "sorted-asc" : "sorted-desc");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var key = function (row) {
          var cell = row.cells[col];
          var v = cell.getAttribute("data-v");
          return v !== null && v !== "" ? Number(v) : cell.textContent;
        };
        rows.sort(function (a, b) {
          var x = key(a), y = key(b);
          var order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
          return asc ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });

  /* ---------- folding sections: a followed link unfolds its section ---------- */
  function unfold(hash) {
    if (!hash || hash.length < 2) return;
    var target = document.getElementById(decodeURIComponent(hash.slice(1)));
    if (!target) return;
    var fold = target.querySelector("details.fold");
    if (fold && !fold.open) fold.open = true;
  }
  window.addEventListener("hashchange", function () { unfold(window.location.hash); });
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[href^='#']") : null;
    if (link) unfold(link.getAttribute("href"));
  });
  unfold(window.location.hash);

  /* ---------- active section link ---------- */
  var links = document.querySelectorAll(".section-links a");
  if ("IntersectionObserver" in window && links.length) {
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (!entry.isIntersecting) return;
        links.forEach(function (a) { a.classList.toggle("active", a.getAttribute("href") === "#" + entry.target.id); });
      });
    }, { rootMargin: "-30% 0px -60% 0px" });
    document.querySelectorAll("section.section").forEach(function (s) { observer.observe(s); });
  }

  /* ---------- the LoCE map ---------- */
  function pointSummary(point, extra) {
    var text = make("div", "point-text");
    var name = make("div", "name");
    name.appendChild(swatch(point.concept));
    name.appendChild(document.createTextNode(point.concept));
    text.appendChild(name);
    var file = make("div", "file", point.label || point.id);
    file.title = point.label || point.id;
    text.appendChild(file);
    if (extra) text.appendChild(make("div", "file", extra));
    return text;
  }

  function thumbnail(point) {
    var img = make("img");
    img.alt = "";
    if (point.thumb) img.src = point.thumb;
    return img;
  }

  /* A categorical palette for anonymous values and a sequential ramp (viridis) for numbers. */
  var GROUP_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
    "#17becf", "#393b79", "#e6550d", "#31a354", "#ad494a", "#6b6ecf", "#637939", "#3182bd"];
  var VIRIDIS = ["#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c", "#22a884", "#44bf70",
    "#7ad151", "#bddf26", "#fde725"];
  var MISSING = "#c8ccd4";
  function hexToRgb(hex) {
    var h = hex.replace("#", "");
    return [parseInt(h.slice(0, 2), 16), parseInt(h.slice(2, 4), 16), parseInt(h.slice(4, 6), 16)];
  }
  function ramp(n) {  /* n colours along VIRIDIS */
    var out = [];
    for (var i = 0; i < n; i++) {
      var t = (i / Math.max(1, n - 1)) * (VIRIDIS.length - 1), j = Math.min(VIRIDIS.length - 2, Math.floor(t)), f = t - j;
      var a = hexToRgb(VIRIDIS[j]), b = hexToRgb(VIRIDIS[j + 1]);
      out.push("#" + [0, 1, 2].map(function (k) { return Math.round(a[k] + (b[k] - a[k]) * f).toString(16).padStart(2, "0"); }).join(""));
    }
    return out;
  }
  var RAMP_STEPS = 63;

  function LoceMap(canvasBox, spec, mapIndex) {
    var self = this;
    var card = canvasBox.closest(".map-pane");
    var points = spec.points;
    var index = {};
    points.forEach(function (p, i) { index[p.id] = i; });
    var concepts = Object.keys(points.reduce(function (acc, p) { acc[p.concept] = 1; return acc; }, {})).sort();
    var conceptCode = {};
    concepts.forEach(function (c, i) { conceptCode[c] = i; });
    /* Data coordinates -> [-1, 1] keeping the aspect ratio (the camera does the rest). */
    var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;  /* no apply(): safe for any number of points */
    points.forEach(function (p) { x0 = Math.min(x0, p.x); x1 = Math.max(x1, p.x); y0 = Math.min(y0, p.y); y1 = Math.max(y1, p.y); });
    var half = Math.max(x1 - x0, y1 - y0, 1e-9) / 2 * 1.06, cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    function nx(x) { return (x - cx) / half; }
    function ny(y) { return (y - cy) / half; }
    var colorSelect = card.querySelector(".map-color");
    var ellipseBox = card.querySelector(".map-ellipses");
    var status = card.querySelector(".map-status");
    var tooltip = canvasBox.querySelector(".map-tooltip");
    var gallery = card.querySelector(".map-gallery");
    var galleryItems = gallery.querySelector(".gallery-items");
    var galleryTitle = gallery.querySelector(".gallery-title");
    var legend = card.querySelector(".map-legend");
    var side = card.querySelector(".map-side");
    var hint = side.querySelector(".hint");
    var selectedBox = side.querySelector(".selected-point");
    var list = side.querySelector("ol.neighbours");
    var hiddenConcepts = {}, onlyConcept = "", colorMode = "concept", mouseMode = "panZoom";
    var sp = null, canvas = null, hovered = -1;
    self.points = points;
    self.renderMs = null;

    var tipImg = make("img"); tipImg.alt = ""; tipImg.hidden = true;
    var tipConcept = make("div", "tt-concept"), tipLabel = make("div", "tt-label"), tipValue = make("div", "tt-label");
    [tipImg, tipConcept, tipLabel, tipValue].forEach(function (n) { tooltip.appendChild(n); });

    /* ----- colours ----- */
    function encoding() {
      /* returns {colors: [...], valueB: fn(p) -> number, wType} for the current colour mode */
      if (colorMode === "concept") return null;
      var key = colorMode === "iou" ? null : colorMode.slice(2);
      var kind = key === null ? "numeric" : (spec.attributes || {})[key];
      var value = function (p) { var v = key === null ? p.iou : (p.a || {})[key]; return v === undefined ? null : v; };
      if (kind === "numeric") {
        var vals = points.map(value).filter(function (v) { return v !== null; });
        var lo = key === null ? 0 : vals.reduce(function (a, b) { return Math.min(a, b); }, Infinity);
        var hi = key === null ? 1 : vals.reduce(function (a, b) { return Math.max(a, b); }, -Infinity);
        if (!vals.length) { lo = 0; hi = 1; }
        var span = hi - lo || 1;
        return {
          kind: "numeric", lo: lo, hi: hi, colors: [MISSING].concat(ramp(RAMP_STEPS)),
          valueB: function (p) { var v = value(p); return v === null ? 0 : (1 + Math.round((v - lo) / span * (RAMP_STEPS - 1))) / RAMP_STEPS; },
          label: value,
        };
      }
      var levels = Array.from(new Set(points.map(value).filter(function (v) { return v !== null; }).map(String))).sort();
      var code = {}; levels.forEach(function (l, i) { code[l] = i + 1; });
      return {
        kind: "categorical", levels: levels,
        colors: [MISSING].concat(levels.map(function (_, i) { return GROUP_PALETTE[i % GROUP_PALETTE.length]; })),
        valueB: function (p) { var v = value(p); return v === null ? 0 : code[String(v)]; },
        label: value,
      };
    }
    function pointData(enc) {
      return {
        x: points.map(function (p) { return nx(p.x); }),
        y: points.map(function (p) { return ny(p.y); }),
        valueA: points.map(function (p) { return conceptCode[p.concept]; }),
        valueB: points.map(function (p) { return enc ? enc.valueB(p) : 0; }),
      };
    }
    function visibleIndices() {
      var out = [];
      points.forEach(function (p, i) { if (!hiddenConcepts[p.concept] && (!onlyConcept || p.concept === onlyConcept)) out.push(i); });
      return out;
    }
    var currentEncoding = null;
    function draw() {
      if (!sp) return Promise.resolve();
      var enc = encoding();
      currentEncoding = enc;
      sp.set({
        colorBy: enc ? "valueB" : "valueA",
        pointColor: enc ? enc.colors : concepts.map(function (c) { return colors[c] || "#999999"; }),
      });
      var t0 = performance.now();
      return sp.draw(pointData(enc), {
        zDataType: "categorical", wDataType: enc && enc.kind === "numeric" ? "continuous" : "categorical",
      }).then(function () {
        var shown = visibleIndices();
        var ready = shown.length === points.length ? sp.unfilter() : sp.filter(shown);
        return Promise.resolve(ready).then(function () {
          self.renderMs = performance.now() - t0;
          canvasBox.setAttribute("data-render-ms", self.renderMs.toFixed(1));
          canvasBox.setAttribute("data-color-mode", colorMode);
          renderLegend();
        });
      });
    }

    /* ----- legend ----- */
    function renderLegend() {
      while (legend.firstChild) legend.removeChild(legend.firstChild);
      var enc = currentEncoding;
      if (!enc) {
        concepts.forEach(function (name) {
          var button = make("button");
          button.type = "button";
          button.title = "show / hide " + name;
          button.appendChild(swatch(name));
          button.appendChild(document.createTextNode(name));
          button.classList.toggle("off", !!hiddenConcepts[name]);
          button.addEventListener("click", function () {
            hiddenConcepts[name] = !hiddenConcepts[name];
            self.closeTooltip();
            draw();
          });
          legend.appendChild(button);
        });
        return;
      }
      if (enc.kind === "numeric") {
        var bar = make("span", "legend-ramp");
        bar.style.background = "linear-gradient(90deg," + enc.colors.slice(1).join(",") + ")";
        legend.appendChild(make("span", "legend-end", enc.lo.toPrecision(3)));
        legend.appendChild(bar);
        legend.appendChild(make("span", "legend-end", enc.hi.toPrecision(3)));
      } else {
        enc.levels.forEach(function (level, i) {
          var item = make("span", "legend-item");
          var s = make("span", "swatch"); s.style.background = enc.colors[i + 1];
          item.appendChild(s); item.appendChild(document.createTextNode(level));
          legend.appendChild(item);
        });
      }
      var miss = make("span", "legend-item");
      var s2 = make("span", "swatch"); s2.style.background = MISSING;
      miss.appendChild(s2); miss.appendChild(document.createTextNode("not recorded"));
      legend.appendChild(miss);
    }

    /* ----- tooltip ----- */
    self.closeTooltip = function () { tooltip.hidden = true; hovered = -1; };
    function showTip(i) {
      var p = points[i];
      hovered = i;
      tipImg.hidden = !p.thumb;
      if (p.thumb) tipImg.src = p.thumb; else tipImg.removeAttribute("src");
      tipConcept.textContent = "";
      tipConcept.appendChild(swatch(p.concept));
      tipConcept.appendChild(document.createTextNode(p.concept));
      tipLabel.textContent = p.label || p.id;
      var extra = p.iou === null || p.iou === undefined ? "" : "IoU " + p.iou.toFixed(3);
      if (currentEncoding && colorMode !== "iou") {
        var v = currentEncoding.label(p);
        extra += (extra ? " · " : "") + colorMode.slice(2) + " " + (v === null ? "not recorded" : String(v));
      }
      tipValue.textContent = extra;
      tooltip.hidden = false;
      var pos = sp.getScreenPosition(i) || [0, 0];
      var box = canvasBox.getBoundingClientRect();
      var left = pos[0] + 14, top = pos[1] + 14;
      if (left + 196 > box.width) left = pos[0] - 200;
      if (top + tooltip.offsetHeight > box.height) top = pos[1] - tooltip.offsetHeight - 10;
      tooltip.style.left = Math.max(4, left) + "px";
      tooltip.style.top = Math.max(4, top) + "px";
    }

    /* ----- selection: one point lists its neighbours, several open the gallery ----- */
    function clearSide() {
      while (list.firstChild) list.removeChild(list.firstChild);
      while (selectedBox.firstChild) selectedBox.removeChild(selectedBox.firstChild);
      hint.hidden = false;
    }
    function showNeighbours(i) {
      clearSide();
      hint.hidden = true;
      var p = points[i];
      selectedBox.appendChild(thumbnail(p));
      selectedBox.appendChild(pointSummary(p, p.iou === null || p.iou === undefined ? "" : "IoU " + p.iou.toFixed(3)));
      (p.nb || []).forEach(function (pair, rank) {
        var j = index[pair[0]];
        var item = make("li");
        item.appendChild(make("span", "rank", rank + 1));
        if (j === undefined) {
          item.appendChild(pointSummary({ id: pair[0], concept: "", label: pair[0] }));
        } else {
          var q = points[j];
          item.appendChild(thumbnail(q));
          item.appendChild(pointSummary(q));
          item.addEventListener("click", function () { sp.select([j]); });
        }
        if (pair[1] !== null && pair[1] !== undefined) item.appendChild(make("span", "sim", pair[1].toFixed(3)));
        list.appendChild(item);
      });
      if (!p.nb || p.nb.length === 0) list.appendChild(make("li", "muted", "No neighbours were computed for this point."));
    }
    var GALLERY_MAX = 120;
    function showGallery(selected) {
      while (galleryItems.firstChild) galleryItems.removeChild(galleryItems.firstChild);
      var counts = {};
      selected.forEach(function (i) { counts[points[i].concept] = (counts[points[i].concept] || 0) + 1; });
      var mix = Object.keys(counts).sort(function (a, b) { return counts[b] - counts[a]; })
        .map(function (c) { return c + " " + counts[c]; }).join(", ");
      galleryTitle.textContent = selected.length + " selected LoCEs: " + mix +
        (selected.length > GALLERY_MAX ? " (first " + GALLERY_MAX + " shown)" : "");
      selected.slice(0, GALLERY_MAX).forEach(function (i) {
        var p = points[i];
        var item = make("figure", "gallery-item");
        item.appendChild(thumbnail(p));
        var cap = make("figcaption");
        cap.appendChild(swatch(p.concept));
        cap.appendChild(document.createTextNode(p.concept + (p.iou === null || p.iou === undefined ? "" : " · IoU " + p.iou.toFixed(2))));
        item.appendChild(cap);
        item.title = p.label || p.id;
        item.addEventListener("click", function () { showNeighbours(i); });
        galleryItems.appendChild(item);
      });
      gallery.hidden = false;
    }
    function onSelect(event) {
      var selected = event.points || [];
      self.closeTooltip();
      if (selected.length === 1) { showNeighbours(selected[0]); gallery.hidden = true; }
      else if (selected.length > 1) { clearSide(); showGallery(selected); }
      status.textContent = selected.length ? selected.length + " selected" : "";
    }
    function onDeselect() { clearSide(); gallery.hidden = true; status.textContent = ""; }

    /* ----- ellipses ----- */
    function drawEllipses() {
      if (!sp) return Promise.resolve();
      if (!ellipseBox || !ellipseBox.checked) { canvasBox.setAttribute("data-ellipses", "0"); return sp.clearAnnotations(); }
      var shown = (spec.ellipses || []).filter(function (e) { return !hiddenConcepts[e.concept] && (!onlyConcept || e.concept === onlyConcept); });
      canvasBox.setAttribute("data-ellipses", String(shown.length));
      return sp.drawAnnotations(shown.map(function (e) {
        var rgb = hexToRgb(colors[e.concept] || "#444444");
        return {
          vertices: e.v.map(function (v) { return [nx(v[0]), ny(v[1])]; }),
          lineColor: [rgb[0] / 255, rgb[1] / 255, rgb[2] / 255, e.small ? 0.45 : 0.95],
          lineWidth: e.small ? 1 : 2,
        };
      }));
    }

    /* ----- creation: only the visible map holds a WebGL context ----- */
    self.activate = function () {
      if (sp) return;
      var box = canvasBox.getBoundingClientRect();
      if (box.width < 10) return;
      canvas = document.createElement("canvas");
      canvas.className = "map-gl";
      canvasBox.insertBefore(canvas, canvasBox.firstChild);
      var lib = window.createScatterplot;
      var create = lib && (lib.default || lib.createScatterplot);
      if (!create) { status.textContent = "the map library did not load"; return; }
      sp = create({
        canvas: canvas, width: box.width, height: box.height,
        pointSize: points.length > 8000 ? 3 : points.length > 2000 ? 5 : 7,
        pointSizeSelected: 2, pointOutlineWidth: 2,
        backgroundColor: "#fbfcfe", pointColorHover: "#111111", pointColorActive: "#111111",
        lassoColor: "#4f46e5", lassoInitiator: false, lassoClearEvent: "deselect",
        opacityInactiveScale: 0.4, annotationLineWidth: 2,
      });
      self.sp = sp;
      sp.subscribe("pointOver", showTip);
      sp.subscribe("pointOut", function () { self.closeTooltip(); });
      sp.subscribe("select", onSelect);
      sp.subscribe("deselect", onDeselect);
      sp.subscribe("view", function () { if (hovered >= 0) self.closeTooltip(); });
      self.ready = draw().then(drawEllipses);
    };
    self.deactivate = function () {
      self.closeTooltip();
      if (!sp) return;
      sp.destroy();
      sp = null; self.sp = null;
      if (canvas && canvas.parentNode) canvas.parentNode.removeChild(canvas);
      canvas = null;
    };

    /* ----- controls ----- */
    if (colorSelect) colorSelect.addEventListener("change", function () {
      colorMode = colorSelect.value;
      self.closeTooltip();
      draw();
    });
    card.querySelectorAll(".map-mode").forEach(function (button) {
      button.addEventListener("click", function () {
        mouseMode = button.getAttribute("data-mode");
        card.querySelectorAll(".map-mode").forEach(function (b) { b.classList.toggle("active", b === button); });
        if (!sp) return;
        if (mouseMode === "panZoom") sp.set({ mouseMode: "panZoom" });
        else sp.set({ mouseMode: "lasso", lassoType: mouseMode === "rectangle" ? "rectangle" : "freeform" });
      });
    });
    if (ellipseBox) ellipseBox.addEventListener("change", function () { drawEllipses(); });
    var reset = card.querySelector(".map-reset");
    if (reset) reset.addEventListener("click", function () { if (sp) sp.zoomToOrigin({ transition: false }); });

    self.highlightConcept = function (concept) {
      if (onlyConcept === concept) return;
      onlyConcept = concept;
      self.closeTooltip();
      if (sp) draw().then(drawEllipses);
    };
  }

  document.querySelectorAll(".map-canvas[data-map]").forEach(function (canvas) {
    var i = Number(canvas.getAttribute("data-map"));
    var spec = (data.maps || [])[i];
    if (spec && spec.points.length) { var m = new LoceMap(canvas, spec, i); m.index = i; maps.push(m); }
  });
  window.loceMaps = maps;  /* for the browser tests and the console */
  function activateVisibleMaps() {
    maps.forEach(function (m) {
      var pane = document.querySelector(".map-pane[data-pane='" + m.index + "']");
      var shown = pane && !pane.classList.contains("inactive") && pane.offsetParent !== null;
      if (shown) m.activate(); else m.deactivate();
    });
  }
  applyFilters();
  activateVisibleMaps();
  document.querySelectorAll("details.fold").forEach(function (d) { d.addEventListener("toggle", activateVisibleMaps); });
})();
