"""The Kite Connect simulator, one concern a module: ``simulator`` (the account, its trading days
and the test's hand), ``server`` (HTTP), ``wire`` (Kite's names, envelopes and records), ``entry``
(order entry rules and market protection), ``walks`` (interim statuses), ``limits`` (rate limits and
the request record), ``gtt`` (GTT triggers), ``push`` (the WebSocket of order updates, its
heartbeats and faults) and ``postbacks`` (postbacks with Kite's checksum, or a wrong one).
``recon_plugin.testing.kite_simulator`` is its public face."""
