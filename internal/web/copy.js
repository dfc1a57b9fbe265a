(function () {
  "use strict";
  function select(el) {
    var r = document.createRange();
    r.selectNodeContents(el);
    var s = window.getSelection();
    s.removeAllRanges();
    s.addRange(r);
  }
  document.querySelectorAll("button.copy").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () {
      var code = b.previousElementSibling;
      function say(t) {
        b.textContent = t;
        setTimeout(function () { b.textContent = "Copy"; }, 1500);
      }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(b.dataset.copy).then(function () { say("Copied"); },
          function () { select(code); say("Press Ctrl+C"); });
      } else {
        select(code);
        say("Press Ctrl+C");
      }
    });
  });
})();
