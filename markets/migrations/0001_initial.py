"""The markets app takes over models that the bots and accounts apps created: exchange accounts,
candles, market snapshots and the paper ledger.

Their tables stay as they are (every model has kept its ``db_table``), so this migration changes
the migration state only; the content types are renamed, so that permissions and admin log
entries follow their models. ``bots.0003`` and ``accounts.0004`` then drop the old models from
their apps' state.
"""

import accounts.fields
import django.db.models.deletion
import markets.models
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models


MOVED = {
    "accounts": ["exchangeaccount"],
    "bots": ["candle", "marketsnapshot", "paperbalance", "paperorder"],
}


def content_types_to_markets(apps, schema_editor):
    content_types = apps.get_model("contenttypes", "ContentType")
    for app_label, models_moved in MOVED.items():
        content_types.objects.filter(app_label=app_label, model__in=models_moved).update(
            app_label="markets"
        )


def content_types_back(apps, schema_editor):
    content_types = apps.get_model("contenttypes", "ContentType")
    for app_label, models_moved in MOVED.items():
        content_types.objects.filter(app_label="markets", model__in=models_moved).update(
            app_label=app_label
        )


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ('accounts', '0003_user_time_zone'),
        ('bots', '0002_bot_botevent_order_position_trade_bot_bot_due_and_more'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    state_operations = [
        migrations.CreateModel(
            name='MarketSnapshot',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('exchange', models.CharField(max_length=32)),
                ('markets', models.JSONField()),
                ('fetched_at', models.DateTimeField(auto_now_add=True, db_index=True)),
            ],
            options={
                'db_table': 'market_snapshots',
            },
        ),
        migrations.CreateModel(
            name='Candle',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('exchange', models.CharField(max_length=32)),
                ('symbol', models.CharField(max_length=40)),
                ('timeframe', models.CharField(choices=[('1m', '1m'), ('5m', '5m'), ('15m', '15m'), ('1h', '1h'), ('4h', '4h'), ('1d', '1d')], max_length=4)),
                ('open_time', models.BigIntegerField(help_text='Candle open time, epoch milliseconds UTC')),
                ('open', models.DecimalField(decimal_places=12, max_digits=28)),
                ('high', models.DecimalField(decimal_places=12, max_digits=28)),
                ('low', models.DecimalField(decimal_places=12, max_digits=28)),
                ('close', models.DecimalField(decimal_places=12, max_digits=28)),
                ('volume', models.DecimalField(decimal_places=12, max_digits=28)),
            ],
            options={
                'db_table': 'candles',
                'constraints': [models.UniqueConstraint(fields=('exchange', 'symbol', 'timeframe', 'open_time'), name='candle_key')],
            },
        ),
        migrations.CreateModel(
            name='ExchangeAccount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('exchange', models.CharField(choices=[('bitget', 'Bitget')], max_length=32)),
                ('label', models.CharField(max_length=100)),
                ('mode', models.CharField(choices=[('paper', 'Paper'), ('live', 'Live')], default='paper', max_length=8)),
                ('api_key', accounts.fields.EncryptedSecretField(blank=True, default='')),
                ('api_secret', accounts.fields.EncryptedSecretField(blank=True, default='')),
                ('passphrase', accounts.fields.EncryptedSecretField(blank=True, default='')),
                ('paper_slippage_bps', models.DecimalField(decimal_places=2, default=Decimal('5'), help_text='Paper market orders fill this many basis points worse than the reference price', max_digits=8)),
                ('paper_maker_fee', models.DecimalField(blank=True, decimal_places=6, max_digits=8, null=True)),
                ('paper_taker_fee', models.DecimalField(blank=True, decimal_places=6, max_digits=8, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='exchange_accounts', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'db_table': 'exchange_accounts',
                'ordering': ('label',),
            },
        ),
        migrations.CreateModel(
            name='PaperBalance',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('currency', models.CharField(max_length=20)),
                ('free', models.DecimalField(decimal_places=12, default=0, max_digits=28)),
                ('used', models.DecimalField(decimal_places=12, default=0, max_digits=28)),
                ('account', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='paper_balances', to='markets.exchangeaccount')),
            ],
            options={
                'db_table': 'paper_balances',
            },
        ),
        migrations.CreateModel(
            name='PaperOrder',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('order_id', models.CharField(default=markets.models.new_order_id, max_length=40, unique=True)),
                ('client_order_id', models.CharField(blank=True, max_length=64, null=True)),
                ('symbol', models.CharField(max_length=40)),
                ('side', models.CharField(choices=[('buy', 'Buy'), ('sell', 'Sell')], max_length=4)),
                ('order_type', models.CharField(choices=[('market', 'Market'), ('limit', 'Limit')], max_length=6)),
                ('price', models.DecimalField(blank=True, decimal_places=12, max_digits=28, null=True)),
                ('amount', models.DecimalField(decimal_places=12, max_digits=28)),
                ('filled', models.DecimalField(decimal_places=12, default=0, max_digits=28)),
                ('average', models.DecimalField(blank=True, decimal_places=12, max_digits=28, null=True)),
                ('cost', models.DecimalField(decimal_places=12, default=0, max_digits=28)),
                ('fee_cost', models.DecimalField(decimal_places=12, default=0, max_digits=28)),
                ('fee_currency', models.CharField(blank=True, max_length=20)),
                ('reserved', models.DecimalField(decimal_places=12, default=0, help_text="Funds held in 'used' while the order is open", max_digits=28)),
                ('status', models.CharField(choices=[('open', 'Open'), ('closed', 'Closed'), ('canceled', 'Canceled')], default='open', max_length=8)),
                ('timestamp', models.BigIntegerField(help_text='Placement time, epoch ms (market time)')),
                ('last_trade_timestamp', models.BigIntegerField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('account', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='paper_orders', to='markets.exchangeaccount')),
            ],
            options={
                'db_table': 'paper_orders',
            },
        ),
        migrations.AddConstraint(
            model_name='exchangeaccount',
            constraint=models.UniqueConstraint(fields=('user', 'label'), name='exchange_account_label_per_user'),
        ),
        migrations.AddConstraint(
            model_name='paperbalance',
            constraint=models.UniqueConstraint(fields=('account', 'currency'), name='paper_balance_currency'),
        ),
        migrations.AddConstraint(
            model_name='paperbalance',
            constraint=models.CheckConstraint(condition=models.Q(('free__gte', 0), ('used__gte', 0)), name='paper_balance_not_negative'),
        ),
        migrations.AddIndex(
            model_name='paperorder',
            index=models.Index(fields=['account', 'status', 'symbol'], name='paper_order_open'),
        ),
        migrations.AddConstraint(
            model_name='paperorder',
            constraint=models.UniqueConstraint(condition=models.Q(('client_order_id__isnull', False)), fields=('account', 'client_order_id'), name='paper_order_client_id'),
        ),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=state_operations),
        migrations.RunPython(content_types_to_markets, content_types_back),
    ]
