from __future__ import annotations

from django import forms

from accounts.models import ExchangeAccount


class LoginForm(forms.Form):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autofocus": True}))
    password = forms.CharField(max_length=1024, strip=False, widget=forms.PasswordInput)


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
