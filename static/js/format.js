/*
 * Numbers and times drawn in the browser exactly as the templates draw them (window.Format).
 *
 *   Format.floatformat(text, places)  Django's floatformat on a decimal string
 *   Format.localTime(ms, withSeconds) "2024-03-01 12:34[:56]" in the trader's time zone
 *   Format.zoned(options)             an Intl.DateTimeFormat in the trader's time zone
 *   Format.row(cells, attributes)     a <tr> of text cells, for rows drawn as a template's
 *
 * The trader's time zone is the page's <body data-time-zone> (the one the server activated).
 */
(() => {
  "use strict";

  const TIME_ZONE = document.body.dataset.timeZone || "UTC";

  /** `places` < 0 drops the decimals of a whole number; rounding is half away from zero, done
   *  on the digits so that no float rounds a price. */
  function floatformat(text, places) {
    if (text === null || text === undefined || text === "") return "";
    const match = /^(-?)(\d*)(?:\.(\d*))?$/.exec(String(text));
    if (match === null) return String(text);
    const [, sign, whole, fraction = ""] = match;
    const digits = Math.abs(places);
    if (places < 0 && /^0*$/.test(fraction)) {
      const integer = BigInt(whole || "0");
      return integer === 0n ? "0" : `${sign}${integer}`;
    }
    const kept = (fraction + "0".repeat(digits + 1)).slice(0, digits + 1);
    let scaled = BigInt((whole || "0") + kept.slice(0, digits));
    if (kept[digits] >= "5") scaled += 1n;
    const padded = scaled.toString().padStart(digits + 1, "0");
    const result = digits ? `${padded.slice(0, -digits)}.${padded.slice(-digits)}` : padded;
    return scaled === 0n ? result : sign + result;
  }

  // "sv-SE" writes dates as ISO does: 2024-03-01 12:34:56.
  const zoned = (options) => new Intl.DateTimeFormat("sv-SE", { timeZone: TIME_ZONE, ...options });
  const DAY_AND_TIME = {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    hourCycle: "h23",
  };
  const toMinute = zoned(DAY_AND_TIME);
  const toSecond = zoned({ ...DAY_AND_TIME, second: "2-digit" });

  function localTime(ms, withSeconds) {
    return (withSeconds ? toSecond : toMinute).format(new Date(ms));
  }

  /** A table row with one cell per text (set as text, never as HTML) and the given attributes. */
  function row(cells, attributes = {}) {
    const tr = document.createElement("tr");
    for (const [name, value] of Object.entries(attributes)) tr.setAttribute(name, value);
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  }

  window.Format = { floatformat, localTime, zoned, row, timeZone: TIME_ZONE };
})();
