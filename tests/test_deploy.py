"""examples/deploy/: the command the systemd unit and the container start is a command that starts."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import ROOT, eventually, free_port, http_get

DEPLOY = ROOT / "examples" / "deploy"
TRADEHOST = str(Path(sys.executable).parent / "tradehost")  # the console script of this environment


def unit_service() -> dict[str, str]:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "recon.service")
    return dict(unit["Service"])


def systemd_argv(exec_start: str, env: dict[str, str]) -> list[str]:
    """ExecStart as systemd expands it: ``${NAME}`` is one word, ``$NAME`` splits on whitespace."""
    argv: list[str] = []
    for word in shlex.split(exec_start):
        if m := re.fullmatch(r"\$\{(\w+)\}", word):
            argv.append(env[m.group(1)])
        elif m := re.fullmatch(r"\$(\w+)", word):
            argv += env.get(m.group(1), "").split()
        else:
            argv.append(word)
    return argv


def paper_config(tmp_path: Path, port: int) -> Path:
    config = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())
    config["store"]["path"] = str(tmp_path / "state" / "recon-state.json")
    config["monitoring"] = {"enabled": True, "address": f"127.0.0.1:{port}"}
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_and_watch(argv: list[str], port: int, cwd: Path, env: dict[str, str]) -> tuple[int, str, bool]:
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                             env={**os.environ, **env})
    try:
        ready = eventually(lambda: _answers(f"http://127.0.0.1:{port}/readyz"), timeout=60, every=0.2)
        out, _err = child.communicate(timeout=60)
    finally:
        child.kill()
    return child.returncode, out, ready


def _answers(url: str) -> bool:
    try:
        return http_get(url, timeout=1)[0] == 200
    except OSError:
        return False


def test_the_systemd_units_exec_start_starts_against_the_paper_config(tmp_path):
    service = unit_service()
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "/etc/recon/recon.env"
    assert "0600" in (DEPLOY / "recon.service").read_text() and "0600" in (DEPLOY / "recon.env.example").read_text()
    port = free_port()
    env = dict(word.split("=", 1) for word in shlex.split(service["Environment"]))
    env.update(RECON_CONFIG=str(paper_config(tmp_path, port)), RECON_RUN_ARGS="--duration 6")
    argv = systemd_argv(service["ExecStart"], env)
    assert argv[:2] == ["/opt/recon/venv/bin/tradehost", "run"]
    status, out, ready = start_and_watch([TRADEHOST, *argv[1:]], port, tmp_path, env)
    assert ready and status == 0, out
    assert out.startswith("tradehost: paper mode, broker paper, store tinydb, for 6s")


def test_the_container_command_starts_against_the_paper_config(tmp_path):
    text = (DEPLOY / "Containerfile").read_text()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1))
    assert entrypoint[0] == "tradehost" and cmd[:1] == ["--config"]
    port = free_port()
    argv = [TRADEHOST, *entrypoint[1:], "--config", str(paper_config(tmp_path, port)), "--duration", "6"]
    status, out, ready = start_and_watch(argv, port, tmp_path, {})
    assert ready and status == 0, out
    assert "/healthz" in text and "'/opt/recon/src[metrics]'" in text


def test_the_deployment_config_is_valid():
    from hostspec.config import Config, merge_schemas, read_yaml, validate
    from hostspec.manager import PluginManager

    path = DEPLOY / "live.yaml"
    schema, declared = merge_schemas(PluginManager().config_sections())
    config = Config(validate(read_yaml(path), schema, path), path, declared)
    assert (config["monitoring"]["enabled"], config["logging"]["format"]) == (True, "json")
