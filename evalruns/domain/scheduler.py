"""When work runs: attempts, due times, retry decisions and each provider's pace.

The one owner of timing for probes and summaries alike. Pure and deterministic, so the lane
orchestrators call it while replaying and the ledger calls it when lanes claim work:

* a provider error carries a `Retry` value (rate limited or transient, after how long);
* every attempt at a work item ends as one `Outcome`; a retry's next attempt is due when the
  provider allows (`next_attempt`), and the last attempt records any failure (`is_final`);
* a provider that keeps refusing (most of its recent calls limited) is paced down for all its
  lanes at once, and paced up again while it accepts calls (additive increase, multiplicative
  decrease on the number of lanes allowed to call it);
* claims shrink as fresh work runs out, so the last jobs spread over every lane.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field

from evalruns.domain.base import ApiModel

# Retry backoff for retryable provider errors without a Retry-After of their own.
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 120.0
# A provider's own Retry-After is honoured up to this (retrying earlier only earns another 429).
RETRY_AFTER_MAX_SECONDS = 3600.0
JITTER = 0.25

# Pacing: a provider is "refusing" when more than this share of the calls reported over the
# last window (at least MIN_CALLS_JUDGED of them) were rate limited; then the lanes allowed to
# call it are cut by DECREASE (at most once per window), and raised by one per window of calls
# that went through.
REFUSING_SHARE = 0.5
MIN_CALLS_JUDGED = 8
DECREASE = 0.75
HEADROOM = 0.9
PACE_WINDOW_SECONDS = 1.0
MIN_REST_SECONDS = 0.5
MAX_REST_SECONDS = 5.0

# Claims: at most this many items; fewer as fresh work runs out, so that the tail of a run is
# spread over every lane instead of queued behind one slow call.
MAX_CLAIM = 16
CLAIMS_PER_LANE_AHEAD = 2


class Retry(ApiModel):
    """A provider's verdict on a failed call that may succeed later: the retry decision value
    carried by `ProviderError`."""

    rate_limited: bool = Field(description="the provider refused the call (429 or quota)")
    after: float | None = Field(default=None, description="seconds the provider asked for")


class WorkItem(ApiModel):
    """A job (probe) or a transcript (summary) by its ordinal, with its next attempt."""

    ordinal: int
    attempt: int = 1
    due: datetime | None = Field(default=None, description="not before (a retry)")

    def is_due(self, now: datetime) -> bool:
        return self.due is None or self.due <= now


class Outcome(ApiModel):
    """What one attempt at one work item did."""

    ordinal: int
    kind: Literal["done", "failed", "retry", "deferred", "stopped"] = Field(
        description="done: succeeded; failed: recorded as failed; retry: try again later; "
        "deferred: the run is paused, nothing was called; stopped: the run has ended"
    )
    model_id: str = ""
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    called: bool = Field(default=False, description="a provider call was made")
    seconds: float = Field(default=0.0, description="how long the provider call took")
    rate_limited: bool = Field(default=False, description="the provider refused the call")
    retry: Retry | None = Field(default=None, description="for `retry`: the provider's verdict")


def retry_delay(run_id: str, ordinal: int, attempt: int, after: float | None) -> float:
    """Seconds before the next attempt: the provider's wish, else exponential backoff.

    Jitter (up to +25%) is derived from the item, so replays compute the same delay.
    """
    digest = hashlib.sha256(f"{run_id}:{ordinal}:{attempt}".encode()).digest()
    jitter = 1 + (digest[0] / 255) * JITTER
    if after is not None and after > 0:
        return min(RETRY_AFTER_MAX_SECONDS, after * jitter)
    return min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** (attempt - 1) * jitter)


def is_final(attempt: int, max_attempts: int) -> bool:
    """No retry follows this attempt: a retryable failure is then recorded as a failure."""
    return attempt >= max_attempts


def next_attempt(run_id: str, item: WorkItem, outcome: Outcome, now: datetime) -> WorkItem:
    """The item's next attempt after a retryable failure, due when the provider allows."""
    after = outcome.retry.after if outcome.retry else None
    delay = retry_delay(run_id, item.ordinal, item.attempt, after)
    return WorkItem(
        ordinal=item.ordinal, attempt=item.attempt + 1, due=now + timedelta(seconds=delay)
    )


def claim_size(remaining: int, lanes: int) -> int:
    """How many fresh items one claim takes: large while much is left (few claims), one at a
    time at the end (no lane sits idle while another holds several)."""
    return max(1, min(MAX_CLAIM, remaining // max(1, lanes * CLAIMS_PER_LANE_AHEAD)))


class Pace(ApiModel):
    """How many of a provider's lanes may call it now, learned from what its calls met.

    A provider that keeps refusing (most calls of a window rate limited) is driven just under
    the rate it accepted: lanes allowed = accepted calls per second × seconds per call ×
    HEADROOM (Little's law), at most once a window; a window without refusals lets one more
    lane in. Scattered refusals (a share below REFUSING_SHARE) change nothing: they are the
    provider's noise, not its limit.
    """

    cap: int = Field(ge=1, description="the provider's concurrency cap: the most lanes")
    allowed: float = Field(description="lanes allowed to call (1..cap)")
    calls: int = Field(default=0, description="calls reported in the current window")
    limited: int = Field(default=0, description="of which rate limited")
    busy_seconds: float = Field(default=0.0, description="time the accepted calls took")
    window_start: datetime | None = None
    last_cut: datetime | None = None

    @classmethod
    def open(cls, cap: int) -> Pace:
        return cls(cap=cap, allowed=float(cap))

    def admits(self, slot: int) -> bool:
        """Lane `slot` (0-based) may call the provider."""
        return slot < max(1, math.floor(self.allowed + 1e-9))

    def rest_seconds(self) -> float:
        """How long a lane beyond the allowed number waits before asking again."""
        return MIN_REST_SECONDS if self.allowed >= self.cap else MAX_REST_SECONDS / 2

    def after_report(
        self, calls: int, limited: int, now: datetime, busy_seconds: float = 0.0
    ) -> Pace:
        """The pace once a lane reported `calls` made since its last claim, `limited` of them
        refused, `busy_seconds` spent in the others (no calls: time passed quietly)."""
        start = self.window_start or now
        total, refused = self.calls + calls, self.limited + limited
        busy = self.busy_seconds + busy_seconds
        window = timedelta(seconds=PACE_WINDOW_SECONDS)
        elapsed = (now - start).total_seconds()
        if now - start < window:
            return self.model_copy(
                update={
                    "calls": total,
                    "limited": refused,
                    "busy_seconds": busy,
                    "window_start": start,
                }
            )
        allowed = self.allowed
        last_cut = self.last_cut
        if total >= MIN_CALLS_JUDGED and refused > REFUSING_SHARE * total:
            if last_cut is None or now - last_cut >= window:
                cut = allowed * DECREASE
                if busy > 0:  # the lanes the accepted rate fits: rate × seconds per call
                    cut = min(cut, busy / elapsed * HEADROOM)
                allowed = max(1.0, cut)
                last_cut = now
        elif refused == 0:
            allowed = min(float(self.cap), allowed + 1.0)
        return self.model_copy(
            update={
                "allowed": allowed,
                "calls": 0,
                "limited": 0,
                "busy_seconds": 0.0,
                "window_start": now,
                "last_cut": last_cut,
            }
        )
