"""recon-plugin: order and position reconciliation for a ``hostspec`` host.

The reconciler (``recon_plugin.plugin``) polls the broker, compares with the state store, plans the
changes by explicit rules (``recon_plugin.engine``), applies them in one atomic write together with
the events they cause (the outbox), and then announces those events (``recon_plugin.signals``).
"""
