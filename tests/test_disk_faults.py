"""The store against bad disks and damaged files: every case either keeps the last good state or refuses
to start with one line naming the file and what is wrong (exit status 1, never a traceback), and no
acknowledged fill or journal entry is ever lost.

Faults are real, in child processes: a file size limit (``RLIMIT_FSIZE``), a full disk (a small tmpfs
of the child's own), a directory that is read-only to the child, a torn final line, damaged files."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from hostspec.model import ChangeSet, JournalEntry, utcnow
from hostspec.store import StoreError
from recon_plugin.stores.tinydb_store import TinyDBStore
from tests.helpers import (
    paper_config,
    permissions_can_be_honoured,
    python_child,
    small_filesystems_can_be_mounted,
    tradehost,
)

# -- refusing to start ---------------------------------------------------------------------------------


def refused(result, path: Path, status: int = 1) -> str:
    """The one line a refused command printed: exit ``status`` (1; 4 for a file another process holds),
    the file named, no traceback."""
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if str(path) in line]
    assert len(lines) == 1, result.stderr
    assert "tradehost:" not in result.stdout  # no host started: nothing was announced
    return lines[0]


@pytest.mark.parametrize("content", [b"", b"null", b"  \n"], ids=["zero-bytes", "null", "blank"])
def test_an_empty_or_null_state_file_is_damage_and_the_writer_refuses_to_start(tmp_path, content):
    state = tmp_path / "state.json"
    state.write_bytes(content)
    line = refused(tradehost("run", "--config", str(paper_config(tmp_path, state)), "--duration", "1"), state)
    assert "Restore it from a backup" in line and "move it away" in line
    assert state.read_bytes() == content  # left as it was, for the person to look at
    assert not (tmp_path / "state.json.journal.jsonl").exists()


@pytest.mark.parametrize("content, problem", [
    ("[]", "holds list [], not a mapping of tables"),
    ('"orders"', 'holds str "orders", not a mapping of tables'),
    ('{"orders": []}', "table 'orders' holding list [], not a mapping of records"),
    ('{"orders": {"1": 5}}', "orders['1'] that is not a record"),
    ('{"orders": {"1": {"status": "FILLED"}}, "meta": {"1": {"schema_version": 1}}}',
     "a record this store cannot read"),
    ('{"ledger": {"1": {"order_id": "A", "filled_qty": 1}}}', "has data but no schema version"),
    ('{"meta": {"1": {"schema_version": 99}}}', "schema version 99"),
], ids=["list", "string", "table-a-list", "record-a-number", "record-without-id", "no-meta", "newer-schema"])
@pytest.mark.parametrize("command", ["run", "recon status"])
def test_a_damaged_but_parseable_state_file_is_one_line_naming_what_is_wrong(tmp_path, content, problem, command):
    state = tmp_path / "state.json"
    state.write_text(content)
    config = str(paper_config(tmp_path, state))
    extra = ("--duration", "1") if command == "run" else ()
    line = refused(tradehost(*command.split(), "--config", config, *extra), state)
    assert problem in line
    assert state.read_text() == content


def test_a_state_path_that_is_a_directory_is_one_line(tmp_path):
    state = tmp_path / "state.json"
    state.mkdir()
    line = refused(tradehost("run", "--config", str(paper_config(tmp_path, state)), "--duration", "1"), state)
    assert "is a directory" in line


def test_a_second_writer_is_one_line(tmp_path):
    state = tmp_path / "state.json"
    first = TinyDBStore(state)
    try:
        line = refused(tradehost("run", "--config", str(paper_config(tmp_path, state)), "--duration", "1"), state, 4)
    finally:
        first.close()
    assert "in use by another writer" in line


@pytest.mark.skipif(not permissions_can_be_honoured(), reason="a root child cannot drop its capabilities here")
@pytest.mark.parametrize("existing", ["new", "existing", "killed-mid-write"],
                         ids=["new-store", "existing-store", "a-killed-writers-temporary-file"])
def test_an_unwritable_directory_is_one_line(tmp_path, existing):
    """Found by the soak for a writer killed mid-write (its temporary file left): the open failed
    removing that file, and the line named the temporary file, not the state file or the directory."""
    directory = tmp_path / "ro"
    directory.mkdir()
    state = directory / "state.json"
    if existing != "new":
        TinyDBStore(state).close()
    if existing == "killed-mid-write":
        (directory / ".state.json.tmp-k1ll3d").write_text("{")
    config = paper_config(tmp_path, state)
    directory.chmod(0o555)
    try:
        code = "import sys; from hostspec.cli import main; sys.exit(main(sys.argv[1:]))"
        result = python_child(code, "run", "--config", str(config), "--duration", "1", honour_permissions=True)
    finally:
        directory.chmod(0o755)
    line = refused(result, state)
    assert "cannot be written" in line and "Permission denied" in line


# -- the single-writer rule, whatever is deleted -------------------------------------------------------

SECOND_WRITER = textwrap.dedent("""
    import sys
    from hostspec.errors import ResourceBusyError
    from recon_plugin.stores.tinydb_store import TinyDBStore
    try:
        TinyDBStore(sys.argv[1]).close()
    except ResourceBusyError as exc:
        print("refused:", exc)
    else:
        print("opened as a second writer")
""")


def test_deleting_every_file_but_the_state_never_lets_a_second_writer_in(tmp_path):
    state = tmp_path / "state.json"
    running = TinyDBStore(state)
    try:
        running.apply(ChangeSet(journal=[JournalEntry("j1", utcnow(), "fill", "applied")]))
        for path in tmp_path.iterdir():  # the lock file of older versions, the journal archive, anything
            if path != state:
                path.unlink()
        result = python_child(SECOND_WRITER, str(state))
        assert result.stdout.startswith("refused:"), result.stdout + result.stderr
        running.apply(ChangeSet(journal=[JournalEntry("j2", utcnow(), "fill", "applied")]))
    finally:
        running.close()
    assert python_child(SECOND_WRITER, str(state)).stdout.startswith("opened")  # released with its writer


NEXT_WRITER = textwrap.dedent("""
    import sys
    from hostspec.model import ChangeSet
    from recon_plugin.stores.tinydb_store import TinyDBStore
    store = TinyDBStore(sys.argv[1])
    store.apply(ChangeSet(checkpoint={"n": 2}))
    store.close()
""")


def test_a_writer_whose_directory_was_deleted_writes_no_more_beside_the_next_writer(tmp_path):
    directory = tmp_path / "var"
    state = directory / "state.json"
    running = TinyDBStore(state)
    running.apply(ChangeSet(journal=[JournalEntry("j1", utcnow(), "fill", "applied")]))
    shutil.rmtree(directory)  # everything, the directory too; then another host starts there
    next_writer = python_child(NEXT_WRITER, str(state))
    assert next_writer.returncode == 0, next_writer.stderr
    with pytest.raises(StoreError, match="deleted or replaced"):
        running.apply(ChangeSet(checkpoint={"n": 1}))
    running.close()
    assert TinyDBStore(state, read_only=True).load().checkpoint == {"n": 2}  # the other writer's, untouched


def test_one_process_may_write_two_files_of_one_directory_but_not_one_file_twice(tmp_path):
    from hostspec.errors import ResourceBusyError
    from recon_plugin.brokers.paper import PaperExchange

    store = TinyDBStore(tmp_path / "state.json")
    exchange = PaperExchange(tmp_path / "paper-account.json")
    with pytest.raises(ResourceBusyError):
        TinyDBStore(tmp_path / "state.json")
    store.close()
    assert python_child(SECOND_WRITER, str(tmp_path / "other.json")).stdout.startswith("refused:")  # the directory
    exchange.close()
    assert python_child(SECOND_WRITER, str(tmp_path / "other.json")).stdout.startswith("opened")


# -- writing through a fault: the last good state is kept, nothing acknowledged is lost ------------------

WORKLOAD = textwrap.dedent("""
    import json, os, resource, sys
    from decimal import Decimal
    from pathlib import Path
    from hostspec.model import ChangeSet, JournalEntry, LedgerEntry, utcnow
    from hostspec.store import StoreError
    from recon_plugin.stores.tinydb_store import TinyDBStore

    path, fault = Path(sys.argv[1]), sys.argv[2]
    acknowledged, refused = [], 0
    store = TinyDBStore(path)

    def write(n):
        global refused
        try:
            store.apply(ChangeSet(ledger=[LedgerEntry(f"O{n}", n, Decimal(n) / 4)],
                                  journal=[JournalEntry(f"j{n}-{k}", utcnow(), "fill", "x" * 300) for k in range(5)],
                                  checkpoint={"n": n}))
        except StoreError:
            refused += 1
        else:
            acknowledged.append(n)

    def journal_lines():
        return path.with_name(path.name + ".journal.jsonl").read_bytes().splitlines()

    for n in range(1, 31):
        write(n)
    filler = path.parent / "filler"
    if fault == "journal-size-limit":  # the archive outgrows the limit, the state file does not
        limit = path.with_name(path.name + ".journal.jsonl").stat().st_size + 1000
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    elif fault == "size-limit":  # nothing can grow: every write fails
        resource.setrlimit(resource.RLIMIT_FSIZE, (512, resource.RLIM_INFINITY))
    elif fault == "full-disk":
        with open(filler, "wb", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"x" * 4096)
                    handle.flush()
            except OSError:
                pass
    elif fault == "read-only":
        path.parent.chmod(0o555)
    for n in range(31, 51):
        write(n)
    state_during_fault = TinyDBStore(path, read_only=True).load().checkpoint.get("n")
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    path.parent.chmod(0o755)
    if filler.exists():
        filler.unlink()
    for n in range(51, 61):
        write(n)
    store.close()
    reopened = TinyDBStore(path)  # a restart after the disk recovered
    state = reopened.load()
    journal = reopened.journal()
    reopened.close()
    lines = journal_lines()
    print(json.dumps({
        "acknowledged": acknowledged, "refused": refused, "state_during_fault": state_during_fault,
        "last_acknowledged_before_recovery": max(n for n in acknowledged if n <= 50),
        "ledger": sorted(int(k[1:]) for k in state.ledger), "checkpoint": state.checkpoint.get("n"),
        "journal": [e.entry_id for e in journal], "seqs": [e.seq for e in journal],
        "archive_seqs": [json.loads(line)["seq"] for line in lines],
    }))
""")


def run_workload(tmp_path: Path, fault: str, **child: object) -> dict[str, object]:
    directory = tmp_path / "disk"
    directory.mkdir()
    result = python_child(WORKLOAD, str(directory / "state.json"), fault, **child)  # type: ignore[arg-type]
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def assert_nothing_acknowledged_is_lost(out: dict[str, object]) -> None:
    acknowledged = out["acknowledged"]
    assert isinstance(acknowledged, list)
    assert out["ledger"] == acknowledged and out["checkpoint"] == acknowledged[-1]
    assert out["journal"] == [f"j{n}-{k}" for n in acknowledged for k in range(5)]
    count = len(out["journal"])  # type: ignore[arg-type]
    assert out["seqs"] == list(range(1, count + 1))  # no gap, no repeat
    assert out["archive_seqs"] == list(range(1, count + 1))  # all archived, every line whole
    assert out["state_during_fault"] == out["last_acknowledged_before_recovery"]  # the last good state


def test_a_journal_archive_over_the_file_size_limit_loses_no_entry(tmp_path):
    """The state file is written and acknowledged while every append to the archive fails (some of them
    half-written): after the limit is lifted the archive has every entry once, in order."""
    out = run_workload(tmp_path, "journal-size-limit")
    assert out["refused"] == 0 and out["acknowledged"] == list(range(1, 61))
    assert_nothing_acknowledged_is_lost(out)


def test_a_file_size_limit_on_every_file_keeps_the_last_good_state(tmp_path):
    out = run_workload(tmp_path, "size-limit")
    assert out["refused"] == 20
    assert_nothing_acknowledged_is_lost(out)


@pytest.mark.skipif(not small_filesystems_can_be_mounted(), reason="no tmpfs of a child's own here (unshare -m)")
def test_a_full_disk_keeps_the_last_good_state_and_loses_nothing_after_it_recovers(tmp_path):
    out = run_workload(tmp_path, "full-disk", small_disk=(tmp_path / "disk", 1024))
    assert out["refused"] == 20
    assert_nothing_acknowledged_is_lost(out)


@pytest.mark.skipif(not permissions_can_be_honoured(), reason="a root child cannot drop its capabilities here")
def test_a_directory_turned_read_only_keeps_the_last_good_state(tmp_path):
    out = run_workload(tmp_path, "read-only", honour_permissions=True)
    assert out["refused"] == 20
    assert_nothing_acknowledged_is_lost(out)


def test_a_torn_final_archive_line_is_cut_before_the_next_append(tmp_path):
    state = tmp_path / "state.json"
    store = TinyDBStore(state)
    store.apply(ChangeSet(journal=[JournalEntry(f"j{i}", utcnow(), "fill", "applied") for i in range(3)]))
    with store.journal_path.open("ab") as handle:
        handle.write(b'{"seq":4,"entry_id":"tor')  # a fragment a failed append left, while running
    store.apply(ChangeSet(journal=[JournalEntry("j3", utcnow(), "fill", "applied")]))
    store.close()
    lines = store.journal_path.read_bytes().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4]
