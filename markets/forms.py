from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from markets.models import ExchangeAccount


class ExchangeAccountForm(forms.Form):
    label = forms.CharField(max_length=100)
    exchange = forms.ChoiceField(choices=ExchangeAccount.Exchange.choices)
    mode = forms.ChoiceField(choices=ExchangeAccount.Mode.choices, widget=forms.RadioSelect)
    # Password inputs: a rejected form never sends a typed secret back to the page.
    api_key = forms.CharField(
        max_length=512, required=False, label="API key", widget=forms.PasswordInput
    )
    api_secret = forms.CharField(
        max_length=512, required=False, label="API secret", widget=forms.PasswordInput
    )
    passphrase = forms.CharField(max_length=512, required=False, widget=forms.PasswordInput)
    paper_usdt = forms.DecimalField(
        label="Starting balance (USDT, paper only)",
        required=False,
        min_value=Decimal(0),
        max_value=Decimal(10**12),
        max_digits=28,
        decimal_places=8,
        initial=Decimal(10000),
    )

    def account_fields(self) -> dict[str, Any]:
        """The service's keyword arguments: a paper account's balance, a live account's keys."""
        data = dict(self.cleaned_data)
        usdt = data.pop("paper_usdt")
        if data["mode"] == ExchangeAccount.Mode.PAPER and usdt is not None:
            data["paper_balance"] = {"USDT": usdt}
        return data
