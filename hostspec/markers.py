"""The project name and the two pluggy markers: the only part of pluggy a plugin author touches.

Kept apart from the specs so that a plugin (or the host's own sinks) can import ``hookimpl`` without
importing the contract's types, and the specs can import nothing from the machinery.
"""

from __future__ import annotations

import pluggy

PROJECT = "hostspec"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
