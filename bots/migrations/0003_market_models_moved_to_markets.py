"""Candles, market snapshots and the paper ledger now belong to the markets app (its 0001), and a
bot's exchange account is the markets app's: the migration state only, the tables stay."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('bots', '0002_bot_botevent_order_position_trade_bot_bot_due_and_more'),
        ('markets', '0001_initial'),
    ]

    state_operations = [
        migrations.DeleteModel(
            name='Candle',
        ),
        migrations.DeleteModel(
            name='MarketSnapshot',
        ),
        migrations.RemoveField(
            model_name='paperorder',
            name='account',
        ),
        migrations.AlterField(
            model_name='bot',
            name='exchange_account',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='bots', to='markets.exchangeaccount'),
        ),
        migrations.DeleteModel(
            name='PaperBalance',
        ),
        migrations.DeleteModel(
            name='PaperOrder',
        ),
    ]

    operations = [migrations.SeparateDatabaseAndState(state_operations=state_operations)]
