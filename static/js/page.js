/*
 * Page: the small behaviours that would otherwise be inline handlers, which the
 * Content-Security-Policy (tradingbot/security.py) forbids. Loaded on every page, signed in or not.
 *
 * - <form data-confirm="Question?">: asks before submitting; "Cancel" keeps the form unsent.
 * - <select data-submit-with="NAME">: a change clicks the form's submit button named NAME.
 * - <input data-browser-time-zone>: filled with the browser's time zone (the login keeps it).
 * - <... data-shade="0.42">: sets the CSS variable --shade (heat-map cells).
 * - <button data-copy="#id">: copies the element's value (or text) to the clipboard.
 */
(() => {
  "use strict";

  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
    if (!button) return;
    const source = document.querySelector(button.dataset.copy);
    if (!source) return;
    const text = "value" in source ? source.value : source.textContent;
    if (navigator.clipboard) navigator.clipboard.writeText(text).then(() => { button.textContent = "Copied"; });
  });

  document.addEventListener("change", (event) => {
    const select = event.target;
    if (!(select instanceof HTMLSelectElement) || !select.dataset.submitWith || !select.form) return;
    const button = select.form.querySelector(`[name="${select.dataset.submitWith}"]`);
    if (button) button.click();
  });

  function decorate() {
    for (const field of document.querySelectorAll("input[data-browser-time-zone]")) {
      field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    }
    for (const cell of document.querySelectorAll("[data-shade]")) {
      cell.style.setProperty("--shade", cell.dataset.shade);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", decorate);
  else decorate();
})();
