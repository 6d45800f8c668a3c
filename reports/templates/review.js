(function () {
  "use strict";
  // Data are set with textContent only: nothing a model wrote is ever parsed as HTML.
  var data = JSON.parse(document.getElementById("tg-data").textContent);
  var key = "tunegate-review-" + data.review_id;
  var state = {};
  try { state = JSON.parse(localStorage.getItem(key) || "{}"); } catch (e) { state = {}; }
  state.labels = state.labels || {};
  function save() { try { localStorage.setItem(key, JSON.stringify(state)); } catch (e) { /* private mode */ } }
  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null) n.textContent = text;
    return n;
  }
  var reviewer = document.getElementById("reviewer");
  reviewer.value = state.reviewer || "";
  reviewer.addEventListener("input", function () { state.reviewer = reviewer.value; save(); });
  var total = data.items.length * data.criteria.length;
  function progress() {
    var n = 0;
    data.items.forEach(function (it) {
      var done = true;
      it.answers.forEach(function (_, slot) {
        data.criteria.forEach(function (c) {
          var l = state.labels[it.id + "|" + slot + "|" + c.name];
          if (l && l.score !== undefined) { n += 1 / it.answers.length; } else { done = false; }
        });
      });
      var card = document.querySelector('[data-id="' + CSS.escape(it.id) + '"]');
      if (card) card.classList.toggle("done", done);
    });
    document.getElementById("progress").textContent = Math.round(n) + " / " + total + " scored";
  }
  var root = document.getElementById("items");
  data.items.forEach(function (it, i) {
    var card = el("div", "item");
    card.setAttribute("data-id", it.id);
    card.appendChild(el("h3", null, "Example " + (i + 1)));
    card.appendChild(el("div", "muted", "Prompt"));
    card.appendChild(el("pre", null, it.prompt));
    if (it.reference.length) {
      card.appendChild(el("div", "muted", "Reference"));
      card.appendChild(el("pre", null, it.reference.join("\n")));
    }
    var grid = el("div", "answers");
    it.answers.forEach(function (text, slot) {
      var box = el("div", "answer");
      box.appendChild(el("strong", null, "Answer " + String.fromCharCode(65 + slot)));
      box.appendChild(el("pre", null, text));
      data.criteria.forEach(function (c) {
        var id = it.id + "|" + slot + "|" + c.name;
        var row = el("div", "crit");
        row.appendChild(el("span", null, c.name + (c.description ? " (" + c.description + ")" : "") + ": "));
        for (var v = c.min; v <= c.max; v++) {
          var lab = el("label");
          var r = el("input");
          r.type = "radio"; r.name = id; r.value = String(v);
          r.setAttribute("data-label", id);
          if (state.labels[id] && state.labels[id].score === v) r.checked = true;
          r.addEventListener("change", (function (lid, val) {
            return function () {
              var l = state.labels[lid] || {};
              l.score = val; l.at = new Date().toISOString();
              state.labels[lid] = l; save(); progress();
            };
          })(id, v));
          lab.appendChild(r); lab.appendChild(document.createTextNode(" " + v));
          row.appendChild(lab);
        }
        box.appendChild(row);
      });
      var note = el("textarea");
      note.placeholder = "note (optional)";
      note.setAttribute("data-note", it.id + "|" + slot);
      note.value = (state.notes || {})[it.id + "|" + slot] || "";
      note.addEventListener("input", function () {
        state.notes = state.notes || {};
        state.notes[it.id + "|" + slot] = note.value; save();
      });
      box.appendChild(note);
      grid.appendChild(box);
    });
    card.appendChild(grid);
    root.appendChild(card);
  });
  progress();
  document.getElementById("export").addEventListener("click", function () {
    var lines = [];
    data.items.forEach(function (it) {
      it.answers.forEach(function (_, slot) {
        data.criteria.forEach(function (c) {
          var l = state.labels[it.id + "|" + slot + "|" + c.name];
          if (!l || l.score === undefined) return;
          lines.push(JSON.stringify({
            review_id: data.review_id, example_id: it.id, slot: slot, reviewer: state.reviewer || "anonymous",
            criterion: c.name, score: l.score, note: (state.notes || {})[it.id + "|" + slot] || null,
            labelled_at: l.at
          }));
        });
      });
    });
    var text = lines.join("\n") + (lines.length ? "\n" : "");
    document.getElementById("export-text").value = text;
    var a = document.getElementById("download");
    a.href = URL.createObjectURL(new Blob([text], { type: "application/jsonl" }));
    a.hidden = false;
  });
})();
