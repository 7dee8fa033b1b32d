"""A text progress bar for runs: done/failed/total, rate and ETA."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

BAR_WIDTH = 30


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class RateMeter:
    """Jobs per second since the first observation, and the time left at that rate."""

    started: float = field(default_factory=time.monotonic)
    first_done: int | None = None

    def rate(self, done: int, now: float | None = None) -> float:
        if self.first_done is None:
            self.first_done = done
        elapsed = (now if now is not None else time.monotonic()) - self.started
        return (done - self.first_done) / elapsed if elapsed > 0 else 0.0


def render(status: str, progress: dict[str, int | float], rate: float) -> str:
    total = int(progress.get("total", 0))
    completed = int(progress.get("completed", 0))
    failed = int(progress.get("failed", 0))
    done = completed + failed
    filled = round(BAR_WIDTH * done / total) if total else BAR_WIDTH
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    eta = format_duration((total - done) / rate) if rate > 0 and done < total else "--:--"
    return f"[{bar}] {done}/{total} done ({failed} failed)  {rate:5.1f} jobs/s  ETA {eta}  {status}"
