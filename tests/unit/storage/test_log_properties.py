"""A hypothesis state machine drives one log through appends, reads, rolls,
delete-records, retention and restarts (clean and crashed) and checks it
against a plain list of what was appended."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dovecote.storage.log import Log, LogConfig
from dovecote.storage.segment import close_segment

from .conftest import append, make_batch

CONFIG = LogConfig(segment_bytes=1500, index_interval_bytes=200)


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="logprop-"))
        self.log, _ = Log.open(self.dir, CONFIG, clean=True)
        self.model: list[bytes] = []  # value of each offset
        self.start = 0
        self.serial = 0

    def teardown(self) -> None:
        if not self.log.closed:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(n=st.integers(1, 8), pad=st.integers(0, 300))
    def do_append(self, n: int, pad: int) -> None:
        self.serial += 1
        data = make_batch(n, prefix=f"{self.serial}-", size=pad)
        result = append(self.log, data)
        assert result.base_offset == len(self.model)
        self.model += [f"{self.serial}-{i}".encode() + b"x" * pad for i in range(n)]

    @precondition(lambda self: len(self.model) > self.start)
    @rule(data=st.data(), max_bytes=st.integers(1, 5000))
    def do_read(self, data, max_bytes: int) -> None:
        offset = data.draw(st.integers(self.start, len(self.model) - 1))
        records = self.log.read_records(offset, max_bytes)
        assert records, "a read below the end returns at least one record"
        assert records[0].offset == offset
        for record in records:
            assert record.value == self.model[record.offset]

    @rule()
    def do_roll(self) -> None:
        self.log.roll()

    @precondition(lambda self: len(self.model) > self.start)
    @rule(data=st.data())
    def do_delete_records(self, data) -> None:
        offset = data.draw(st.integers(self.start, len(self.model)))
        self.start = self.log.delete_records_before(offset)
        assert self.start == offset

    @rule(limit=st.integers(500, 5000))
    def do_size_retention(self, limit: int) -> None:
        self.log.config = LogConfig(
            segment_bytes=CONFIG.segment_bytes, index_interval_bytes=200, retention_bytes=limit
        )
        self.log.apply_retention()
        self.log.config = CONFIG
        self.start = self.log.log_start_offset
        assert (
            self.log.size_bytes - self.log.segments[0].size < limit or len(self.log.segments) == 1
        )

    @rule()
    def do_clean_restart(self) -> None:
        self.log.close()
        self.log, report = Log.open(self.dir, CONFIG, clean=True)
        assert not report.bytes_cut

    @rule()
    def do_crash_restart(self) -> None:
        # A crash after fsync: files are complete, but no index files were written.
        for segment in self.log.segments:
            os.fsync(segment.fd)
            close_segment(segment, write_indexes=False)
        for path in self.dir.glob("*.index"):
            path.unlink()
        self.log, report = Log.open(self.dir, CONFIG, clean=False)
        assert not report.bytes_cut

    @invariant()
    def offsets_agree(self) -> None:
        assert self.log.log_end_offset == len(self.model)
        assert self.log.log_start_offset == self.start


TestLogMachine = LogMachine.TestCase
TestLogMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
