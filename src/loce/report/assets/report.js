/* loce report: filters, sortable tables and the interactive LoCE map.
   Plain JavaScript, no dependencies. Text from data is only ever set through textContent / attributes. */
(function () {
  "use strict";
  var SVG_NS = "http://www.w3.org/2000/svg";
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
    maps.forEach(function (m) { m.highlightConcept(state.concept); });
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

  function LoceMap(canvas, spec) {
    var card = canvas.closest(".map-pane");
    var points = spec.points;
    var index = {};
    points.forEach(function (p, i) { index[p.id] = i; });
    var W = 800, H = 600, PAD = 26;
    var xs = points.map(function (p) { return p.x; }), ys = points.map(function (p) { return p.y; });
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    var y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
    var scale = Math.min((W - 2 * PAD) / Math.max(x1 - x0, 1e-9), (H - 2 * PAD) / Math.max(y1 - y0, 1e-9));
    var offX = (W - (x1 - x0) * scale) / 2, offY = (H - (y1 - y0) * scale) / 2;
    function px(p) { return offX + (p.x - x0) * scale; }
    function py(p) { return H - (offY + (p.y - y0) * scale); }

    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    svg.setAttribute("class", "loce-map");
    svg.setAttribute("role", "img");
    var linkLayer = document.createElementNS(SVG_NS, "g");
    var pointLayer = document.createElementNS(SVG_NS, "g");
    svg.appendChild(linkLayer);
    svg.appendChild(pointLayer);
    var radius = points.length > 3000 ? 2.6 : points.length > 800 ? 3.6 : 5;
    var circles = points.map(function (p, i) {
      var c = document.createElementNS(SVG_NS, "circle");
      c.setAttribute("cx", px(p).toFixed(2));
      c.setAttribute("cy", py(p).toFixed(2));
      c.setAttribute("r", radius);
      c.setAttribute("fill", colors[p.concept] || "#999");
      c.setAttribute("data-i", i);
      pointLayer.appendChild(c);
      return c;
    });
    canvas.insertBefore(svg, canvas.firstChild);

    var tooltip = canvas.querySelector(".map-tooltip");
    var tipImg = make("img");
    tipImg.alt = "";
    tipImg.hidden = true;
    var tipConcept = make("div", "tt-concept");
    var tipLabel = make("div", "tt-label");
    var tipIou = make("div", "tt-label");
    [tipImg, tipConcept, tipLabel, tipIou].forEach(function (n) { tooltip.appendChild(n); });

    function pointIndex(target) {
      var i = target && target.getAttribute && target.getAttribute("data-i");
      return i === null || i === undefined ? -1 : Number(i);
    }
    function place(event) {
      var box = canvas.getBoundingClientRect();
      var left = event.clientX - box.left + 16, top = event.clientY - box.top + 16;
      if (left + 196 > box.width) left = event.clientX - box.left - 200;
      if (top + tooltip.offsetHeight > box.height) top = event.clientY - box.top - tooltip.offsetHeight - 12;
      tooltip.style.left = Math.max(4, left) + "px";
      tooltip.style.top = Math.max(4, top) + "px";
    }
    function showTip(i, event) {
      var p = points[i];
      tipImg.hidden = !p.thumb;
      if (p.thumb) tipImg.src = p.thumb; else tipImg.removeAttribute("src");
      tipConcept.textContent = "";
      tipConcept.appendChild(swatch(p.concept));
      tipConcept.appendChild(document.createTextNode(p.concept));
      tipLabel.textContent = p.label || p.id;
      tipIou.textContent = p.iou === null || p.iou === undefined ? "" : "IoU " + p.iou.toFixed(3);
      tooltip.hidden = false;
      place(event);
    }
    svg.addEventListener("mouseover", function (e) { var i = pointIndex(e.target); if (i >= 0) showTip(i, e); });
    svg.addEventListener("mousemove", function (e) { if (!tooltip.hidden) place(e); });
    svg.addEventListener("mouseout", function (e) { if (pointIndex(e.target) >= 0) tooltip.hidden = true; });
    svg.addEventListener("click", function (e) { var i = pointIndex(e.target); if (i >= 0) select(i); else clear(); });

    var side = card.querySelector(".map-side");
    var hint = side.querySelector(".hint");
    var selectedBox = side.querySelector(".selected-point");
    var list = side.querySelector("ol.neighbours");

    function clear() {
      circles.forEach(function (c) { c.classList.remove("selected", "neighbour"); });
      while (linkLayer.firstChild) linkLayer.removeChild(linkLayer.firstChild);
      while (list.firstChild) list.removeChild(list.firstChild);
      while (selectedBox.firstChild) selectedBox.removeChild(selectedBox.firstChild);
      hint.hidden = false;
    }
    function select(i) {
      clear();
      hint.hidden = true;
      var p = points[i];
      circles[i].classList.add("selected");
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
          circles[j].classList.add("neighbour");
          var line = document.createElementNS(SVG_NS, "line");
          line.setAttribute("class", "link");
          line.setAttribute("x1", circles[i].getAttribute("cx"));
          line.setAttribute("y1", circles[i].getAttribute("cy"));
          line.setAttribute("x2", circles[j].getAttribute("cx"));
          line.setAttribute("y2", circles[j].getAttribute("cy"));
          linkLayer.appendChild(line);
          item.addEventListener("mouseenter", function () { circles[j].classList.add("hot"); });
          item.addEventListener("mouseleave", function () { circles[j].classList.remove("hot"); });
          item.addEventListener("click", function () { circles[j].classList.remove("hot"); select(j); });
        }
        if (pair[1] !== null && pair[1] !== undefined) item.appendChild(make("span", "sim", pair[1].toFixed(3)));
        list.appendChild(item);
      });
      if (!p.nb || p.nb.length === 0) list.appendChild(make("li", "muted", "No neighbours were computed for this point."));
    }

    var hiddenConcepts = {};
    var legend = card.querySelector(".map-legend");
    Object.keys(points.reduce(function (acc, p) { acc[p.concept] = 1; return acc; }, {})).sort().forEach(function (name) {
      var button = make("button");
      button.type = "button";
      button.title = "show / hide " + name;
      button.appendChild(swatch(name));
      button.appendChild(document.createTextNode(name));
      button.addEventListener("click", function () {
        hiddenConcepts[name] = !hiddenConcepts[name];
        button.classList.toggle("off", hiddenConcepts[name]);
        points.forEach(function (p, i) { circles[i].classList.toggle("off", !!hiddenConcepts[p.concept]); });
      });
      legend.appendChild(button);
    });

    this.highlightConcept = function (concept) {
      points.forEach(function (p, i) { circles[i].classList.toggle("dim", concept !== "" && p.concept !== concept); });
    };
  }

  document.querySelectorAll(".map-canvas[data-map]").forEach(function (canvas) {
    var spec = (data.maps || [])[Number(canvas.getAttribute("data-map"))];
    if (spec && spec.points.length) maps.push(new LoceMap(canvas, spec));
  });
  applyFilters();
})();
