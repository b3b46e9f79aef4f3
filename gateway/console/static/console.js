// ReelGuard review console: the one script. Selecting a blurred (flagged) frame shows it
// sharp; selecting it again blurs it again. Buttons, so the keyboard works the same way.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button.reveal").forEach(function (button) {
    button.addEventListener("click", function () {
      var img = button.querySelector("img");
      var shown = button.getAttribute("aria-pressed") === "true";
      button.setAttribute("aria-pressed", shown ? "false" : "true");
      if (img) { img.classList.toggle("blurred", shown); }
    });
  });
});
