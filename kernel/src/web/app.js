// Trellis UI script. Every page works without it; it adds:
// - drag-and-drop of deal cards between stages on the pipeline board, and
// - a warning before an idle session ends, with a way to stay signed in.
// No inline handlers: the Content-Security-Policy forbids inline script.
"use strict";

(function () {
  function csrfToken() {
    var input = document.querySelector("input[name=_csrf]");
    return input ? input.value : "";
  }

  // ---- Pipeline board -------------------------------------------------
  // Pointer events (mouse, pen and touch alike), not the HTML5 drag API,
  // which phones lack. A card follows the pointer once it has moved a few
  // pixels; dropping it over another column moves the deal there.
  function setupBoard(board) {
    var status = document.getElementById("board-status");
    function announce(text) {
      if (status) status.textContent = text;
    }

    function columnAt(x, y) {
      var el = document.elementFromPoint(x, y);
      return el ? el.closest(".column") : null;
    }

    function move(card, from, column) {
      var body = new URLSearchParams();
      body.set("_csrf", csrfToken());
      body.set("stage_id", column.dataset.stage);
      body.set("version", card.dataset.version);
      if (column.dataset.kind === "lost") {
        var reason = window.prompt("Why was this deal lost?");
        if (!reason) return;
        body.set("lost_reason", reason);
      }
      column.querySelector(".cards").appendChild(card);
      announce("Moving " + card.dataset.name + "…");
      fetch("/deals/" + card.dataset.id + "/move", {
        method: "POST",
        headers: {
          "Content-Type": "application/x-www-form-urlencoded",
          "Accept": "application/json"
        },
        body: body.toString(),
        credentials: "same-origin"
      }).then(function (r) {
        return r.json().then(function (data) { return { ok: r.ok, data: data }; });
      }).then(function (res) {
        if (res.ok) {
          card.dataset.version = res.data.version;
          var select = card.querySelector("select[name=stage_id]");
          if (select) select.value = column.dataset.stage;
          var version = card.querySelector("input[name=version]");
          if (version) version.value = res.data.version;
          card.classList.add("moved");
          announce(card.dataset.name + " moved to " + column.dataset.name + ".");
        } else {
          from.querySelector(".cards").appendChild(card);
          announce("Not moved: " + (res.data.message || "error"));
          window.alert("Not moved: " + (res.data.message || "error"));
        }
      }).catch(function () {
        from.querySelector(".cards").appendChild(card);
        announce("Not moved: the server could not be reached.");
      });
    }

    var drag = null;
    board.addEventListener("pointerdown", function (e) {
      var card = e.target.closest(".card.deal");
      // Links and the card's own form keep working as usual.
      if (!card || e.button !== 0 || e.target.closest("a, select, button, input, label, summary, details")) return;
      drag = { card: card, x: e.clientX, y: e.clientY, moving: false, id: e.pointerId };
    });
    board.addEventListener("pointermove", function (e) {
      if (!drag || e.pointerId !== drag.id) return;
      var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (!drag.moving && Math.abs(dx) + Math.abs(dy) < 6) return;
      if (!drag.moving) {
        drag.moving = true;
        drag.card.classList.add("dragging");
        try { board.setPointerCapture(e.pointerId); } catch (err) { /* not capturable */ }
      }
      e.preventDefault();
      drag.card.style.transform = "translate(" + dx + "px," + dy + "px)";
      board.querySelectorAll(".column.drop-target").forEach(function (c) { c.classList.remove("drop-target"); });
      drag.card.style.visibility = "hidden";
      var over = columnAt(e.clientX, e.clientY);
      drag.card.style.visibility = "";
      if (over) over.classList.add("drop-target");
    });
    function finish(e) {
      if (!drag || e.pointerId !== drag.id) return;
      var d = drag;
      drag = null;
      if (!d.moving) return;
      d.card.classList.remove("dragging");
      d.card.style.transform = "";
      d.card.style.visibility = "hidden";
      var column = e.type === "pointerup" ? columnAt(e.clientX, e.clientY) : null;
      d.card.style.visibility = "";
      board.querySelectorAll(".column.drop-target").forEach(function (c) { c.classList.remove("drop-target"); });
      var from = d.card.closest(".column");
      if (column && column !== from) move(d.card, from, column);
    }
    board.addEventListener("pointerup", finish);
    board.addEventListener("pointercancel", finish);
  }

  // ---- Idle warning ---------------------------------------------------
  function setupIdle(seconds) {
    var warnBefore = Math.min(120, Math.floor(seconds / 2));
    var dialog = document.getElementById("idle-warning");
    if (!dialog || seconds <= 0) return;
    var warnTimer, endTimer;
    function arm() {
      clearTimeout(warnTimer);
      clearTimeout(endTimer);
      warnTimer = setTimeout(function () {
        dialog.hidden = false;
        var stay = dialog.querySelector("button[data-stay]");
        if (stay) stay.focus();
      }, (seconds - warnBefore) * 1000);
      endTimer = setTimeout(function () {
        window.location.href = "/login?notice=idle";
      }, seconds * 1000);
    }
    var stay = dialog.querySelector("button[data-stay]");
    if (stay) {
      stay.addEventListener("click", function () {
        // An expired session answers with a redirect to the sign-in page;
        // only the ping's own 204 means the session lives on.
        fetch("/ui/ping", { credentials: "same-origin", redirect: "manual" }).then(function (r) {
          if (r.status === 204) {
            dialog.hidden = true;
            arm();
          } else {
            window.location.href = "/login?notice=idle";
          }
        });
      });
    }
    arm();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var board = document.getElementById("board");
    if (board) setupBoard(board);
    var idle = parseInt(document.body.dataset.idleSeconds || "0", 10);
    if (idle > 0) setupIdle(idle);
  });
})();
