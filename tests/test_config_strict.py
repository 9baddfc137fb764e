"""The strict configuration rules (issue #18): nothing in the file is silently dropped or silently
kept. Each case ends with exit status 2 and one line naming the file and the key.

- a number is finite;
- a key written twice in one mapping is refused, with both lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hostspec.cli import main
from hostspec.config import ConfigError, read_yaml
from tests.helpers import write


def _write(tmp_path: Path, text: str) -> Path:
    """``text`` as ``tmp_path/c.yaml`` (not dedented: the tests write YAML line by line), with ``STORE``
    standing for a state file in ``tmp_path``."""
    path = tmp_path / "c.yaml"
    path.write_text(text.replace("STORE", str(tmp_path / "state.json")))
    return path


@pytest.fixture
def config(tmp_path):
    return lambda text: _write(tmp_path, text)


def refused(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """``tradehost recon status`` on ``path``: exit 2 and one line naming the file; returns the line."""
    assert main(["recon", "status", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"tradehost: configuration error: {path}: ")
    return err


def accepted(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["recon", "status", "--config", str(path)])
    assert status == 0, capsys.readouterr().err


# -- row 2: finite numbers ------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "value"), [
    ("reconciliation.interval_seconds", ".nan"),
    ("reconciliation.interval_seconds", ".inf"),
    ("reconciliation.missing_grace_seconds", "-.inf"),
    ("reconciliation.missing_grace_seconds", ".NaN"),
    ("broker.paper.tick_seconds", ".nan"),
    ("broker.paper.tick_seconds", "1" + "0" * 400),  # an integer no float can hold
    ("broker.kite.timeout_seconds", ".Inf"),
])
def test_a_number_must_be_finite(config, capsys, key, value):
    """NaN passes every minimum (a NaN interval busy-looped the paper broker) and an infinite one
    never runs a second cycle."""
    section, *parents, leaf = key.split(".")
    nested = "".join(f"{'  ' * (i + 1)}{p}:\n" for i, p in enumerate(parents))
    text = f"store:\n  path: STORE\n{section}:\n{nested}{'  ' * (len(parents) + 1)}{leaf}: {value}\n"
    err = refused(config(text), capsys)
    assert f": {key}: must be a finite number" in err


# -- row 3: duplicate keys --------------------------------------------------------------------------------

def test_a_section_written_twice_is_refused_with_both_lines(config, capsys):
    """YAML keeps the last block: the first block's ``dry_run: true`` was lost without a word."""
    text = ("store:\n  path: STORE\nreconciliation:\n  dry_run: true\nmode: paper\n"
            "reconciliation:\n  interval_seconds: 2\n")
    err = refused(config(text), capsys)
    assert ": reconciliation: written twice, at lines 3 and 6" in err


def test_a_key_written_twice_in_a_section_is_refused_with_its_dotted_name(config, capsys):
    err = refused(config("store:\n  path: STORE\nbroker:\n  paper:\n    seed: 1\n    tick_seconds: 1\n    seed: 2\n"),
                  capsys)
    assert ": broker.paper.seed: written twice, at lines 5 and 7" in err


def test_merge_keys_and_aliases_still_load(tmp_path):
    """Overriding a merged value is what ``<<`` is for, not a duplicate; safe_load's tags stay refused."""
    path = write(tmp_path / "c.yaml", """
        timing: &timing {interval_seconds: 3, missing_retries: 4}
        reconciliation:
          <<: *timing
          missing_retries: 5
    """)
    raw = read_yaml(path)
    assert raw["reconciliation"] == {"interval_seconds": 3, "missing_retries": 5}
    write(path, "mode: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="YAML error"):
        read_yaml(path)


