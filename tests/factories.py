from __future__ import annotations

import factory

from accounts.models import User
from markets.models import ExchangeAccount

DEFAULT_PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"trader{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class ExchangeAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExchangeAccount

    user = factory.SubFactory(UserFactory)
    exchange = ExchangeAccount.Exchange.BITGET
    label = factory.Sequence(lambda n: f"Account {n}")
    mode = ExchangeAccount.Mode.PAPER
