"""Test and demo tooling, kept out of the product's adapter packages: nothing under
``recon_plugin.brokers`` should need a simulator or pytest to be imported.
"""
