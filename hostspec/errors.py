"""The host's errors: one base, with the command line's exit status a property of the type.

The command line catches ``HostError`` once and exits with ``exit_status``; it never keeps a list of
exception types. A message never contains a secret: broker plugins redact theirs before raising.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar


def one_line(text: str) -> str:
    """``text`` with every character that is not printable (a newline, a terminal escape) written as
    its Python escape: a message is one line whatever a file or a key name holds."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class HostError(Exception):
    """Something the host or a plugin reports to the person running it, as one line."""

    exit_status: ClassVar[int] = 1
    """What ``tradehost`` exits with when this error ends a command: 1 a runtime failure, 2 bad input."""


class ConfigError(HostError):
    """A configuration problem, named by file and dotted key: the user must fix the file or the
    environment (exit status 2)."""

    exit_status = 2

    def __init__(self, file: str | Path, key: str, message: str) -> None:
        super().__init__(one_line(f"{file}: {key}: {message}" if key else f"{file}: {message}"))
        self.file = str(file)
        self.key = key


class SettingError(ValueError):
    """Raised by a settings dataclass's ``check()`` (a rule across its fields): names the field, not the
    file or the section, which the host adds when it turns this into a ``ConfigError``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PluginError(HostError):
    """A plugin raised where the host cannot go on; names the plugin and the hook."""

    def __init__(self, plugin: str, hook: str, error: BaseException) -> None:
        super().__init__(f"plugin {plugin!r} failed in {hook}: {type(error).__name__}: {error}")
        self.plugin = plugin
        self.hook = hook
        self.error = error


class ResourceError(HostError):
    """A file or a port the configuration names is held by another process (a state file another host
    writes, a metrics address another process listens on): exit status 4, nothing was changed."""

    exit_status = 4


class ResourceBusyError(ResourceError):
    """A file another process holds for writing (a second host on one state file or account).

    Nothing was changed; stop the other process first.
    """

    def __init__(self, path: str | Path, holder: str | Path) -> None:
        super().__init__(f"{path} is in use by another writer (lock {holder})")
        self.path = str(path)
