// The bot form: show the chosen strategy's parameters and a replay's fields only. Hidden inputs
// are disabled, so that only the chosen strategy's values are posted (the server reads only
// those anyway; without JavaScript every strategy's fields show).
//
// "Replay from" follows the market: #stored-candles (json_script: each account's exchange and
// every market's first and last stored candle, epoch ms) gives the range shown in #replay-range,
// in the trader's time zone, and the field's default, the first stored candle, while the trader
// has not typed a time of their own.
(function () {
  "use strict";
  const form = document.getElementById("bot-form");
  if (!form) return;
  const strategy = form.querySelector("[name=strategy]");
  const replayOnly = form.querySelector(".replay-only");
  const replayStart = form.querySelector("[name=replay_start]");
  const rangeHint = document.getElementById("replay-range");
  const dataNode = document.getElementById("stored-candles");
  const stored = dataNode ? JSON.parse(dataNode.textContent) : { accounts: {}, markets: [] };
  let defaultStart = replayStart ? replayStart.value : "";

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

  function chosenMarket() {
    const account = form.querySelector("[name=exchange_account]");
    const value = (name) => (form.querySelector(`[name=${name}]`) || {}).value || "";
    const exchange = account ? stored.accounts[account.value] : undefined;
    return stored.markets.find((market) => market.exchange === exchange
      && market.symbol === value("symbol").trim() && market.timeframe === value("timeframe"));
  }

  function followMarket(initially) {
    if (!rangeHint || !replayStart || !window.Format) return;
    const market = chosenMarket();
    const first = market ? window.Format.localTime(market.first) : "";
    if (initially && replayStart.value !== "" && replayStart.value !== first.replace(" ", "T")) {
      defaultStart = null;
    }
    if (!market) {
      rangeHint.textContent = "No candles of this market and timeframe are stored, so it cannot "
        + "be replayed: import some first (python manage.py import_candles).";
      return;
    }
    rangeHint.textContent = `Stored ${market.timeframe} candles of ${market.symbol} on `
      + `${market.exchange}: ${first} → ${window.Format.localTime(market.last)} `
      + `(${window.Format.timeZone}).`;
    // The default follows the market until the trader types a time of their own (a time the
    // page came with, from a backtest's link, is theirs too).
    if (!initially && defaultStart !== null && replayStart.value === defaultStart) {
      defaultStart = first.replace(" ", "T");
      replayStart.value = defaultStart;
    }
  }

  form.addEventListener("change", (event) => {
    update();
    if (event.target !== replayStart) followMarket();
  });
  update();
  followMarket(true);
})();
