// The bot form: show the chosen strategy's parameters and a replay's fields only. Hidden inputs
// are disabled, so that only the chosen strategy's values are posted (the server reads only
// those anyway; without JavaScript every strategy's fields show).
(function () {
  "use strict";
  const form = document.getElementById("bot-form");
  if (!form) return;
  const strategy = form.querySelector("[name=strategy]");
  const replayOnly = form.querySelector(".replay-only");

  function show(element, visible) {
    element.hidden = !visible;
    element.querySelectorAll("input, select").forEach((input) => { input.disabled = !visible; });
  }

  function update() {
    form.querySelectorAll("fieldset.params").forEach((fieldset) => {
      show(fieldset, fieldset.dataset.strategy === strategy.value);
    });
    const source = form.querySelector("[name=data_source]:checked");
    show(replayOnly, source !== null && source.value === "replay");
  }

  form.addEventListener("change", update);
  update();
})();
