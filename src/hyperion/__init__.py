"""Hyperion: one control plane for on-prem GPU machines and cloud accounts.

Layers (imports point down): cli > runtime | sim > api > agent > providers > store > ports > core > model.
See docs/architecture.md.
"""

__version__ = "0.1.0"
