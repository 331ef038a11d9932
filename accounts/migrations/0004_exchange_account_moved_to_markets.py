"""Exchange accounts now belong to the markets app (its 0001): the migration state only, the
table stays."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_user_time_zone'),
        ('bots', '0003_market_models_moved_to_markets'),
    ]

    state_operations = [
        migrations.DeleteModel(
            name='ExchangeAccount',
        ),
    ]

    operations = [migrations.SeparateDatabaseAndState(state_operations=state_operations)]
