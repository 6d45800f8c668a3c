// tunegate report: the per-example viewer. Every stored text reaches the page through
// textContent / createTextNode only, never innerHTML, so model outputs cannot become markup.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("tg-data").textContent);
  var PAGE = 50;
  // Layout of one example (see reports/collect.py _examples): S slots per side-dependent field,
  // slot 0 the base, slot k the k-th candidate (S is 2 for one model too: slot 1 stays empty).
  var S = DATA.slots || 2, N = DATA.sides || 1;
  var ID = 0, PROMPT = 1, REF = 2, OUT = 3, ERR = 3 + S, VAL = 3 + 2 * S, EXTRA = 3 + 3 * S;
  var two = N >= 2, many = N > 2;  // "two": a base and candidates to compare it with
  // st.cand: the candidate that the filters, the sort, the chips' colours and the diff compare with
  var st = { suite: 0, metric: 0, cand: 1, filter: "all", query: "", sort: "data", page: 0, rows: [] };
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null) n.textContent = String(text);
    return n;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    var a = Math.abs(v);
    return (a !== 0 && (a < 1e-3 || a >= 1e4)) ? v.toPrecision(3) : String(Math.round(v * 1e4) / 1e4);
  }
  function suite() { return DATA.suites[st.suite]; }
  // delta in the metric's good direction: > 0 better, < 0 worse, null when a side has no score
  function gain(ex, m) {
    return gainOf(ex, m, st.cand);
  }
  function gainOf(ex, m, k) {
    if (!two || !ex[VAL] || !ex[VAL + k]) return null;
    var a = ex[VAL][m], b = ex[VAL + k][m];
    if (a === null || b === null || a === undefined || b === undefined) return null;
    return suite().metrics[m].hib ? b - a : a - b;
  }
  function hasError(ex) {
    for (var k = 0; k < N; k++) if (ex[ERR + k]) return true;
    return !!(ex[EXTRA] && ex[EXTRA].se);
  }
  function haystack(ex) {
    if (ex._h === undefined) {
      var parts = [ex[ID], ex[PROMPT], JSON.stringify(ex[REF])];
      for (var k = 0; k < S; k++) parts.push(ex[OUT + k] || "", ex[ERR + k] || "");
      if (ex[EXTRA] && ex[EXTRA].r) parts.push(JSON.stringify(ex[EXTRA].r));
      ex._h = parts.join("\n").toLowerCase();
    }
    return ex._h;
  }

  function recompute() {
    var s = suite(), m = st.metric, q = st.query.toLowerCase(), out = [];
    for (var i = 0; i < s.examples.length; i++) {
      var ex = s.examples[i], g = gain(ex, m);
      if (st.filter === "regressed" && !(g !== null && g < 0)) continue;
      if (st.filter === "improved" && !(g !== null && g > 0)) continue;
      if (st.filter === "errors" && !hasError(ex)) continue;
      if (q && haystack(ex).indexOf(q) < 0) continue;
      out.push(ex);
    }
    if (st.sort !== "data") {
      var dir = st.sort === "worst" ? 1 : -1;
      out = out.map(function (ex, k) { return [gain(ex, m), k, ex]; });
      out.sort(function (x, y) {
        if (x[0] === null || y[0] === null) return (x[0] === null) - (y[0] === null) || x[1] - y[1];
        return dir * (x[0] - y[0]) || x[1] - y[1];
      });
      out = out.map(function (t) { return t[2]; });
    }
    st.rows = out;
    st.page = 0;
    draw();
  }

  // Word-level diff: tokens are words, single CJK characters and whitespace runs.
  var TOKEN = /[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af\uff00-\uffef\u3000-\u303f]|[^\s\u3000-\u303f\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af\uff00-\uffef]+|\s+/g;
  function tokens(t) { return t.match(TOKEN) || []; }
  function isSpace(t) { return /^\s+$/.test(t); }
  function lcsKeep(a, b) {
    // keepA[i] / keepB[j]: token is in the longest common subsequence of the two token lists
    var n = a.length, m = b.length, keepA = new Array(n).fill(false), keepB = new Array(m).fill(false);
    var s = 0;
    while (s < n && s < m && a[s] === b[s]) { keepA[s] = keepB[s] = true; s++; }
    var ea = n, eb = m;
    while (ea > s && eb > s && a[ea - 1] === b[eb - 1]) { ea--; eb--; keepA[ea] = keepB[eb] = true; }
    var N = ea - s, M = eb - s;
    if (N === 0 || M === 0 || N * M > 400000) return [keepA, keepB];  // too long: mark the middle changed
    var W = M + 1, dp = new Uint32Array((N + 1) * W);
    for (var i = N - 1; i >= 0; i--)
      for (var j = M - 1; j >= 0; j--)
        dp[i * W + j] = a[s + i] === b[s + j] ? dp[(i + 1) * W + j + 1] + 1
          : Math.max(dp[(i + 1) * W + j], dp[i * W + j + 1]);
    i = 0; j = 0;
    while (i < N && j < M) {
      if (a[s + i] === b[s + j]) { keepA[s + i] = keepB[s + j] = true; i++; j++; }
      else if (dp[(i + 1) * W + j] >= dp[i * W + j + 1]) i++;
      else j++;
    }
    return [keepA, keepB];
  }
  function diffInto(pre, text, other, cls) {
    if (text === null || text === undefined) { pre.appendChild(el("span", "muted", "(no output)")); return; }
    if (other === null || other === undefined) { pre.textContent = text; return; }
    var a = tokens(text), b = tokens(other);
    var wa = a.filter(function (t) { return !isSpace(t); }), wb = b.filter(function (t) { return !isSpace(t); });
    var keep = lcsKeep(wa, wb)[0], k = 0, buf = "";
    for (var i = 0; i < a.length; i++) {
      if (isSpace(a[i])) { buf += a[i]; continue; }
      if (keep[k++]) { buf += a[i]; continue; }
      if (buf) { pre.appendChild(document.createTextNode(buf)); buf = ""; }
      pre.appendChild(el("span", cls, a[i]));
    }
    if (buf) pre.appendChild(document.createTextNode(buf));
  }

  function textBlock(title, text, cls) {
    var box = el("div", "blk " + (cls || ""));
    box.appendChild(el("h4", null, title));
    var pre = el("pre");
    pre.textContent = text;
    box.appendChild(pre);
    return box;
  }

  function card(ex) {
    var s = suite(), c = el("article", "ex");
    c.setAttribute("data-id", ex[ID]);
    var head = el("header");
    head.appendChild(el("span", "exid", ex[ID]));
    if (ex[EXTRA] && ex[EXTRA].c) {  // found in training data by a contamination scan
      var flag = el("span", "contam", "contaminated: " + ex[EXTRA].c.join("; "));
      head.appendChild(flag);
    }
    for (var m = 0; m < s.metrics.length; m++) {
      var a = ex[VAL] ? ex[VAL][m] : null;
      var g = gain(ex, m), chip = el("span", "chip" + (g === null ? "" : g > 0 ? " better" : g < 0 ? " worse" : ""));
      var txt = s.metrics[m].name + " " + fmt(a);
      for (var k = 1; two && k < N; k++) {  // base → each candidate, in side order
        var b = ex[VAL + k] ? ex[VAL + k][m] : null, gk = gainOf(ex, m, k);
        txt += (k > 1 ? " · " : " → ") + (many ? DATA.labels[k] + " " : "") + fmt(b) +
          (gk === null || gk === 0 ? "" : " (" + (b - a > 0 ? "+" : "") + fmt(b - a) + ")");
      }
      chip.textContent = txt;
      head.appendChild(chip);
    }
    c.appendChild(head);
    var ref = ex[REF];
    var full = s.prefix + ex[PROMPT] + s.suffix;
    var pb = el("div", "blk prompt");
    pb.appendChild(el("h4", null, "Prompt"));
    var pre = el("pre");
    pre.textContent = ex[PROMPT] || full;
    pb.appendChild(pre);
    if (s.prefix || s.suffix) {
      var det = el("details"), sum = el("summary", null, "full prompt (with the template shared by all examples)");
      var fp = el("pre", "muted");
      fp.textContent = full;
      det.appendChild(sum); det.appendChild(fp); pb.appendChild(det);
    }
    if (ex[EXTRA] && ex[EXTRA].pb) {
      var det2 = el("details"), fp2 = el("pre", "muted");
      det2.appendChild(el("summary", null, "the candidate's prompt differs (another chat template)"));
      fp2.textContent = ex[EXTRA].pb;
      det2.appendChild(fp2); pb.appendChild(det2);
    }
    var top = el("div", "row2");
    top.appendChild(pb);
    var refText = Array.isArray(ref) ? (ref.length ? ref.join("\n— or —\n") : "(no reference)") : String(ref);
    top.appendChild(textBlock(Array.isArray(ref) && ref.length > 1 ? "References" : "Reference", refText, "ref"));
    c.appendChild(top);
    var outs = el("div", many ? "rowN" : two ? "row2" : "row1");
    if (many) outs.style.setProperty("--n", String(N));
    var labels = DATA.labels;
    for (var k = 0; k < N; k++) {
      var ob = el("div", "blk out out" + k + (many && k === st.cand ? " picked" : ""));
      if (s.kind !== "perplexity") {  // a perplexity suite scores the prompt text: no output to show
        ob.appendChild(el("h4", null, labels[k] + " output"));
        var op = el("pre", "output");
        // the base is diffed against the picked candidate, every candidate against the base
        diffInto(op, ex[OUT + k], two ? ex[OUT + (k === 0 ? st.cand : 0)] : null, k === 0 ? "del" : "ins");
        ob.appendChild(op);
      }
      if (ex[ERR + k]) ob.appendChild(el("div", "err", "error: " + ex[ERR + k]));
      outs.appendChild(ob);
    }
    c.appendChild(outs);
    var extra = ex[EXTRA];
    if (extra && (extra.r || extra.se)) {
      var notes = el("div", "notes");
      [["r", "rationale", "rat"], ["se", "scoring error", "err"]].forEach(function (kind) {
        var d = extra[kind[0]];
        if (!d) return;
        for (var k = 0; k < N; k++) {
          // one line per distinct text: a rubric judge gives every criterion the same rationale
          var texts = [], names = new Map();  // a Map: any text is a safe key
          Object.keys(d).forEach(function (mi) {
            var t = d[mi][k];
            if (!t || (kind[0] === "se" && t === ex[ERR + k])) return;  // the example's error is shown once
            if (!names.has(t)) { names.set(t, []); texts.push(t); }
            names.get(t).push(s.metrics[+mi].name);
          });
          texts.forEach(function (t) {
            var p = el("p", kind[2]);
            p.appendChild(el("b", null, names.get(t).join(", ") + " · " + labels[k] + " " + kind[1] + ": "));
            p.appendChild(document.createTextNode(t));
            notes.appendChild(p);
          });
        }
      });
      if (notes.childNodes.length) c.appendChild(notes);
    }
    return c;
  }

  function draw() {
    var list = $("tg-list"), n = st.rows.length, pages = Math.max(1, Math.ceil(n / PAGE));
    st.page = Math.min(Math.max(st.page, 0), pages - 1);
    list.replaceChildren();
    var frag = document.createDocumentFragment();
    st.rows.slice(st.page * PAGE, st.page * PAGE + PAGE).forEach(function (ex) { frag.appendChild(card(ex)); });
    list.appendChild(frag);
    $("tg-count").textContent = n + " of " + suite().examples.length + " examples";
    $("tg-page").textContent = "page " + (st.page + 1) + " of " + pages;
    $("tg-prev").disabled = st.page === 0;
    $("tg-next").disabled = st.page >= pages - 1;
  }

  function fillMetrics() {
    var sel = $("tg-metric");
    sel.replaceChildren();
    suite().metrics.forEach(function (m, i) {
      var o = el("option", null, m.name + (m.hib ? " ↑" : " ↓"));
      o.value = String(i);
      sel.appendChild(o);
    });
    st.metric = 0;
  }

  function init() {
    var sel = $("tg-suite");
    DATA.suites.forEach(function (s, i) {
      var o = el("option", null, s.name + " (" + s.examples.length + ")");
      o.value = String(i);
      sel.appendChild(o);
    });
    if (!DATA.suites.length) { $("tg-count").textContent = "no examples"; return; }
    fillMetrics();
    var cand = $("tg-cand");
    for (var k = 1; k < N; k++) {
      var co = el("option", null, DATA.labels[k]);
      co.value = String(k);
      cand.appendChild(co);
    }
    cand.addEventListener("change", function () { st.cand = +cand.value; recompute(); });
    if (!many) Array.prototype.forEach.call(document.querySelectorAll(".many-only"), function (x) { x.hidden = true; });
    sel.addEventListener("change", function () { st.suite = +sel.value; fillMetrics(); recompute(); });
    $("tg-metric").addEventListener("change", function () { st.metric = +$("tg-metric").value; recompute(); });
    $("tg-sort").addEventListener("change", function () { st.sort = $("tg-sort").value; recompute(); });
    var timer = null;
    $("tg-search").addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { st.query = $("tg-search").value; recompute(); }, 150);
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-filter]"), function (b) {
      if (!two && (b.dataset.filter === "regressed" || b.dataset.filter === "improved")) b.hidden = true;
      b.addEventListener("click", function () {
        st.filter = b.dataset.filter;
        Array.prototype.forEach.call(document.querySelectorAll("[data-filter]"), function (x) {
          x.setAttribute("aria-pressed", String(x === b));
        });
        recompute();
      });
    });
    if (!two) Array.prototype.forEach.call(document.querySelectorAll(".two-only"), function (x) { x.hidden = true; });
    $("tg-prev").addEventListener("click", function () { st.page--; draw(); window.scrollTo(0, $("examples").offsetTop); });
    $("tg-next").addEventListener("click", function () { st.page++; draw(); window.scrollTo(0, $("examples").offsetTop); });
    recompute();
    // Clicking a suite row in the scoreboard opens its examples.
    Array.prototype.forEach.call(document.querySelectorAll("[data-suite-index]"), function (a) {
      a.addEventListener("click", function () {
        sel.value = a.getAttribute("data-suite-index");
        sel.dispatchEvent(new Event("change"));
      });
    });
  }
  init();
  window.tunegateReport = { state: st, recompute: recompute };  // for tests and the curious
})();
