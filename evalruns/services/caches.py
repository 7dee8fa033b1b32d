"""What each process keeps about the runs it works on.

* `JobSpaces`: a run's jobs computed from its snapshot, read once per process and kept
  (a run's definition and configuration never change).
* `RecentTranscripts`: transcripts written here, for their summary to read without storage.
* `Turns`: a lock per run, so this process's claims on a run's ledger take turns.
* `RunGates`: a run's status and budget as this process last read them, at most
  `EVALRUNS_STATUS_CACHE_SECONDS` old: a probe's status check costs no storage round trip, and
  a pause or cancel answers only once that long has passed, so no call starts after it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from evalruns.domain.jobspace import JobSpace
from evalruns.domain.ledger import Gate
from evalruns.domain.transcripts import Transcript
from evalruns.storage.ledgers import LedgerRepository
from evalruns.storage.runs import RunRepository

JOB_SPACES_KEPT = 32
RECENT_TRANSCRIPTS_KEPT = 4096


class JobSpaces:
    """Each run's `JobSpace`, built on first use in this process."""

    def __init__(self, runs: RunRepository, ledgers: LedgerRepository) -> None:
        self._runs = runs
        self._ledgers = ledgers
        self._spaces: OrderedDict[str, JobSpace] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, run_id: str) -> JobSpace:
        with self._lock:
            space = self._spaces.get(run_id)
            if space is not None:
                self._spaces.move_to_end(run_id)
                return space
        space = self.load(run_id)
        with self._lock:
            self._spaces[run_id] = space
            while len(self._spaces) > JOB_SPACES_KEPT:
                self._spaces.popitem(last=False)
        return space

    def cached(self, run_id: str) -> JobSpace | None:
        with self._lock:
            return self._spaces.get(run_id)

    def load(self, run_id: str) -> JobSpace:
        run = self._runs.get(run_id)
        space = JobSpace(run.id, run.definition, run.config)
        if run.only_failed:
            selection = self._ledgers.selection(run_id, list(space.groups))
            space = JobSpace(run.id, run.definition, run.config, selection)
        return space


class Turns:
    """One lock per key, for work of this process that must not overlap (a run's claims)."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def hold(self, key: str) -> threading.Lock:
        with self._lock:
            if len(self._locks) > 4 * JOB_SPACES_KEPT:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault(key, threading.Lock())


class RunGates:
    """Each run's status and budget, read at most every `staleness` seconds."""

    def __init__(self, runs: RunRepository, staleness: float) -> None:
        self._runs = runs
        self.staleness = staleness
        self._gates: dict[str, tuple[float, Gate]] = {}
        self._lock = threading.Lock()
        self._reads = Turns()

    def cached(self, run_id: str) -> Gate | None:
        with self._lock:
            entry = self._gates.get(run_id)
        if entry is None or time.monotonic() - entry[0] > self.staleness:
            return None
        return entry[1]

    def get(self, run_id: str) -> Gate:
        gate = self.cached(run_id)
        if gate is not None:
            return gate
        with self._reads.hold(run_id):  # one read at a time; the others take its answer
            gate = self.cached(run_id)
            if gate is not None:
                return gate
            read_at = time.monotonic()
            gate = self._runs.gate(run_id)
            with self._lock:
                if len(self._gates) > 4 * JOB_SPACES_KEPT:
                    self._gates.clear()
                self._gates[run_id] = (read_at, gate)
            return gate


class RecentTranscripts:
    """Transcripts this process wrote and a summary will soon read: the summary of a job
    probed here costs no storage read. A transcript missing here is read from storage."""

    def __init__(self, kept: int = RECENT_TRANSCRIPTS_KEPT) -> None:
        self._kept = kept
        self._transcripts: OrderedDict[tuple[str, str], Transcript] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, transcript: Transcript) -> None:
        with self._lock:
            self._transcripts[(transcript.run_id, transcript.id)] = transcript
            while len(self._transcripts) > self._kept:
                self._transcripts.popitem(last=False)

    def take(self, run_id: str, transcript_id: str) -> Transcript | None:
        with self._lock:
            return self._transcripts.pop((run_id, transcript_id), None)
