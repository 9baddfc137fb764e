"""The ``tradehost`` command: run the host, list plugins, and whatever subcommands plugins add."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from hostspec.app import App
from hostspec.commands import Command, HostOpener
from hostspec.config import LogFormat, LoggingSettings
from hostspec.console import ConsoleSink, silence
from hostspec.errors import ConfigError, HostError, PluginError
from hostspec.info import INFO_COMMANDS, version_text
from hostspec.logformat import TEXT_FORMAT, EventLog, format_in, use_format
from hostspec.manager import DISABLE_ENV
from hostspec.model import LocalState
from hostspec.secrets import RedactingFilter

log = logging.getLogger("tradehost")

UNHEALTHY_EXIT = 3

EPILOG = f"""\
Exit status: 0 success; 1 a runtime failure (or, for checks, "found something"); 2 bad
configuration or arguments; 3 run ended unhealthy (no good broker snapshot lately, the reconciler
stopped); 4 a file or port the configuration names is held by another process.
Plugins load from the 'hostspec' entry-point group; set {DISABLE_ENV}=name1,name2 (or
plugins.disabled in the config) to skip some.
"""


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(TEXT_FORMAT, "%H:%M:%S"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("urllib3", "kiteconnect"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _setup_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, metavar="SECONDS",
                        help="stop by itself after this many seconds (default: run until Ctrl-C or SIGTERM)")


def run_command(args: argparse.Namespace, app: HostOpener) -> int:
    """``tradehost run``: start every plugin, print events as they happen, stop cleanly."""
    assert isinstance(app, App), "tradehost run starts plugins: it needs the reference host's App"
    if args.duration is not None and args.duration <= 0:
        raise ConfigError("--duration", "", "must be a positive number of seconds")
    console = ConsoleSink(sys.stdout)
    event_log = EventLog()
    use_format(format_in(args.config), console=True)
    host = app.open_host(args.config, extra_plugins=[("console", console), ("event-log", event_log)])
    console.zone = host.calendar.zone if host.calendar is not None else None
    book: list[LocalState] = []
    log_format = host.config.get(LoggingSettings).format
    use_format(log_format, console=True)
    event_log.enabled = log_format is LogFormat.JSON

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        host.stop_requested.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        print(f"tradehost: {host.mode.value} mode, broker {host.config.broker.name}, "
              f"store {host.config.store.name}"
              + (f", for {args.duration:g}s" if args.duration else "; Ctrl-C to stop"), flush=True)
        app.start(host)
        host.stop_requested.wait(args.duration)
    except PluginError as exc:
        log.error("%s; stopping", exc)
        status = exc.error.exit_status if isinstance(exc.error, HostError) else 1
    finally:
        app.stop(host, last_look=lambda h: book.extend([h.store.load()] if h.store is not None else []))
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for line in console.summary_lines(book[0] if book else None):
        print(line)
    if host.sink_failures:
        print("event sinks that raised: " + ", ".join(f"{k} ({v})" for k, v in host.sink_failures.items()))
    if host.unhealthy and not status:
        print(f"tradehost: ended unhealthy: {'; '.join(host.unhealthy)}", file=sys.stderr)
        status = UNHEALTHY_EXIT
    return status


BUILTIN_COMMANDS = (
    Command("run", "run the host: reconcile continuously and print events as they happen",
            _setup_run, run_command, uses_config=True),
    *INFO_COMMANDS,
)


def build_parser(commands: Sequence[Command]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradehost", description="A trading host with pluggable brokers, stores and reconciliation.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands:
        command.add_to(sub)
    return parser


def main(argv: Sequence[str] | None = None, app: App | None = None) -> int:
    setup_logging(verbose="-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:]))
    app = app or App()
    commands = {c.name: c for c in (*BUILTIN_COMMANDS, *app.commands())}
    args = build_parser(list(commands.values())).parse_args(argv)
    command: Command = args.command_to_run
    assert command.run is not None
    try:
        status = command.run(args, app)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        return _reader_went_away()
    except ConfigError as exc:
        print(f"tradehost: configuration error: {exc}", file=sys.stderr)
        return exc.exit_status
    except HostError as exc:
        print(f"tradehost: {args.command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        log.exception("tradehost %s failed", args.command)
        print(f"tradehost: {args.command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _reader_went_away() -> int:
    """The reader of stdout closed it (``tradehost recon status --json | head -1``): not a failure of
    the command. What is left in the buffer goes nowhere (no second error at exit); exit 0."""
    silence(sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
