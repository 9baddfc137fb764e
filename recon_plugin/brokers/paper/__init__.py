"""The paper broker: a simulated exchange for PAPER mode, kept on disk so it survives restarts.

- ``simulation``: the market and each order's future, as pure functions of the account's inputs;
- ``account``: the account file (inputs only, written atomically on place and cancel);
- ``exchange``: ``PaperExchange``, the ``Broker`` over the two;
- ``settings``: the ``broker.paper`` section; ``plugin``: the factory and hooks;
- ``commands``: ``tradehost paper reset``.
"""

from recon_plugin.brokers.paper.exchange import PaperExchange
from recon_plugin.brokers.paper.settings import PaperSettings
from recon_plugin.brokers.paper.simulation import draw_script, market_price

__all__ = ["PaperExchange", "PaperSettings", "draw_script", "market_price"]
