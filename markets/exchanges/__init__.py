"""The one exchange interface (``base.Exchange``) and its implementations.

ccxt is used only inside ``ccxt_exchange`` and ``markets``; everything else talks to an
``Exchange``, so that paper and live trading, and tests, share the same calls.
"""
