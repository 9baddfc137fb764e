"""The plugin guide documents every hook and every signal there is."""

from __future__ import annotations

from hostspec import hookspecs
from recon_plugin import signals
from tests.helpers import ROOT

GUIDE = (ROOT / "docs" / "plugin-guide.md").read_text()


def test_every_hook_is_in_the_guide():
    hooks = [name for name in vars(hookspecs) if name.startswith("hostspec_")]
    assert len(hooks) == 8
    assert [h for h in hooks if f"`{h}(" not in GUIDE] == []


def test_every_signal_is_in_the_guide_with_a_documented_payload():
    for name, signal in signals.BY_KIND.items():
        assert f"`{name}`" in GUIDE, name
        assert "kwargs" in (signal.__doc__ or ""), f"signal {name} documents no keyword arguments"
