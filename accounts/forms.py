from __future__ import annotations

from django import forms


class LoginForm(forms.Form):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autofocus": True}))
    password = forms.CharField(max_length=1024, strip=False, widget=forms.PasswordInput)


class NotificationChannelForm(forms.Form):
    name = forms.CharField(max_length=100)
    # A password input: a refused form never sends the typed URL (a secret) back to the page.
    url = forms.CharField(
        max_length=2000, label="Apprise URL", widget=forms.PasswordInput,
        help_text="tgram://bottoken/chatid, discord://id/token, mailto://user:pass@host, "
        "json://host:port/path ...",
    )  # fmt: skip
    kinds = forms.MultipleChoiceField(
        choices=(), widget=forms.CheckboxSelectMultiple, label="Events", required=False
    )
    daily_summary_at = forms.TimeField(
        required=False, label="Daily summary at (your time zone, HH:MM)",
        widget=forms.TimeInput(attrs={"type": "time"}),
    )  # fmt: skip

    def __init__(self, *args: object, kinds: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        field = self.fields["kinds"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = list(kinds.items())
        field.initial = list(kinds)
