"""The Kite Connect simulator, one concern a module: ``simulator`` (the account, its trading days
and the test's hand), ``server`` (HTTP), ``wire`` (Kite's names, envelopes and records), ``entry``
(order entry rules and market protection), ``walks`` (interim statuses), ``limits`` (rate limits and
the request record) and ``gtt`` (GTT triggers). ``recon_plugin.testing.kite_simulator`` is its
public face."""
