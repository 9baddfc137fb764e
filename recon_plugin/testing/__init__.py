"""Test and demo tooling, kept out of the product's adapter packages.

Nothing under ``recon_plugin.brokers`` imports from here: the real brokers can never start a fake.
The tools are:

- ``kite_simulator``: a Kite Connect HTTP simulator on 127.0.0.1 that lives through trading days on a
  given clock and treats each order by its type and variety as Kite does (no test dependency); its
  modules are in the package ``kite_sim``;
- ``demo``: the demo order flow (the ``demo`` plugin), which gives a short run discrepancies to find;
- ``kite_sim_broker``: the ``kite-sim`` broker (a real Kite broker talking to an in-process
  simulator: the live demo) and the ``tradehost kite-sim`` command;
- ``pytest_plugin``: the ``kite_sim`` and ``kite_client`` fixtures, which pytest loads through the
  ``pytest11`` entry point. It is the only module here that imports pytest, and only pytest imports
  it, so the product (and the live demo) never loads pytest.

This package imports nothing by itself, so importing one tool does not load the others.
"""
