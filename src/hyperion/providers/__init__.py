"""NodeProvider adapters (the ``hyperion.ports.provider.NodeProvider`` port), one file each.

``local`` starts ``hyperiond`` agents as processes on this machine. Cloud and cluster
providers import their SDKs lazily, so this package imports without them. Every provider
passes the contract suite in ``hyperion.testing.provider_contract``.
"""
