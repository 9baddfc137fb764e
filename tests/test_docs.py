"""The plugin guide documents every hook, every signal and every field of every event kind there is."""

from __future__ import annotations

import re

from hostspec import hookspecs
from hostspec.events import Payload, payload_class
from recon_plugin import events, signals
from tests.helpers import ROOT

GUIDE = (ROOT / "docs" / "plugin-guide.md").read_text()


def test_every_hook_is_in_the_guide():
    hooks = [name for name in vars(hookspecs) if name.startswith("hostspec_")]
    assert len(hooks) == 9
    assert [h for h in hooks if f"`{h}(" not in GUIDE] == []


def test_every_signal_names_its_payload_class_and_is_in_the_guide():
    for name, signal in signals.BY_KIND.items():
        cls = payload_class(name)
        assert f"[{cls.__name__}]" in (signal.__doc__ or ""), f"signal {name} does not name its payload class"
    for cls in events.PAYLOADS:
        assert re.search(rf"^\| `{cls.kind}` \| .+ \| `{cls.__name__}` \|$", GUIDE, re.M), cls.kind


def section(name: str) -> str:
    """The guide's text under the heading that names ``name`` (in backticks), up to the next heading."""
    match = re.search(rf"^#+ [^\n]*`{name}`[^\n]*$(.*?)(?=^#)", GUIDE + "\n#", re.M | re.S)
    assert match, f"no heading for {name} in the guide"
    return match.group(1).replace("\\|", "|")


def declared_fields(cls: type) -> dict[str, str]:
    """The fields ``cls`` itself declares, with their annotations as written."""
    declared = vars(cls).get("__annotations__", {})
    hints = {name: getattr(hint, "__forward_arg__", hint) for name, hint in declared.items()}  # TypedDict: ForwardRef
    return {name: hint for name, hint in hints.items() if not hint.startswith("ClassVar")}


def test_every_field_of_every_event_kind_is_documented_with_its_type():
    documented: dict[type, str] = {Payload: "Payload", events.PositionDifference: "PositionSynced"}
    for cls in events.PAYLOADS:
        for base in cls.__mro__:
            if isinstance(base, type) and issubclass(base, Payload):
                documented.setdefault(base, base.__name__)
    assert events.OrderChange in documented
    missing = []
    for cls, heading in documented.items():
        text = section(heading)
        for name, hint in declared_fields(cls).items():
            if not re.search(rf"^\| `{name}` \| `{re.escape(hint)}` \| \S.* \|$", text, re.M):
                missing.append(f"{cls.__name__}.{name}: {hint}")
    assert missing == []


def test_the_architecture_names_every_module_and_no_module_that_is_gone():
    """docs/architecture.md matches the code: every module of both packages is named in it (by its
    name, or as a package), and every `name` it mentions that looks like a module exists."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    modules = sorted({p.relative_to(ROOT).with_suffix("") for package in ("hostspec", "recon_plugin")
                      for p in (ROOT / package).rglob("*.py") if p.name != "__init__.py"})
    unnamed = [str(m) for m in modules if not re.search(rf"\b{re.escape(m.name)}\b", text)]
    assert unnamed == []
    for package in ("brokers/paper/", "brokers/kite/", "calendars/india", "stores/tinydb_store", "testing/"):
        assert package in text
        assert (ROOT / "recon_plugin" / package.rstrip("/")).exists() or (
            ROOT / "recon_plugin" / f"{package}.py").exists(), package
