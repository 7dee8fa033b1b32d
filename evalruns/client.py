"""A small client of the evalruns HTTP API (what the CLI and the local stack script use)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://localhost:7071"
TIMEOUT_SECONDS = 60.0
# An export written in the background is asked after this often, for at most this long.
EXPORT_POLL_SECONDS = 1.0
EXPORT_WAIT_SECONDS = 3600.0


class ApiError(Exception):
    """A problem+json answer, shown as its title and detail."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or "request failed"
        super().__init__(f"HTTP {status}: {detail}")


class ExportFailed(ApiError):
    """An export that went on in the background and failed, with the reason it gives."""

    def __init__(self, status: dict[str, Any]) -> None:
        Exception.__init__(self, status.get("error") or "the export failed")
        self.status = 200
        self.problem = status


class EvalrunsClient:
    def __init__(self, base_url: str = DEFAULT_URL, key: str | None = None) -> None:
        headers = {"x-functions-key": key} if key else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api", headers=headers, timeout=TIMEOUT_SECONDS
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EvalrunsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:500]}
            raise ApiError(response.status_code, problem)
        return response.json() if response.content else None

    def models(self, available_only: bool = True) -> list[dict[str, Any]]:
        params = {"availableOnly": str(available_only).lower()}
        items: list[dict[str, Any]] = self._call("GET", "/models", params=params)["items"]
        return items

    def create_definition(self, definition: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self._call("POST", "/definitions", json=definition)
        return created

    def start_run(self, **body: Any) -> dict[str, Any]:
        started: dict[str, Any] = self._call("POST", "/runs", json=body)
        return started

    def run(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self._call("GET", f"/runs/{run_id}")
        return run

    def runs(self, **filters: Any) -> Iterator[dict[str, Any]]:
        yield from self._pages("/runs", filters)

    def transcripts(self, run_id: str, **filters: Any) -> Iterator[dict[str, Any]]:
        yield from self._pages(f"/runs/{run_id}/transcripts", filters)

    def transcript(self, run_id: str, transcript_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", f"/runs/{run_id}/transcripts/{transcript_id}")
        return found

    def control(self, run_id: str, action: str, body: dict[str, Any] | None = None) -> Any:
        """`pause`, `resume`, `cancel` (answer: the run) or `rerun` (answer: as a start)."""
        return self._call("POST", f"/runs/{run_id}/{action}", json=body or {})

    def export(self, run_id: str) -> dict[str, Any]:
        """The export's link; one written in the background (202) is waited for."""
        answer: dict[str, Any] = self._call(
            "POST", f"/runs/{run_id}/exports", json={"format": "csv"}
        )
        deadline = time.monotonic() + EXPORT_WAIT_SECONDS
        while answer.get("status") == "running" and time.monotonic() < deadline:
            time.sleep(EXPORT_POLL_SECONDS)
            answer = self._call("GET", f"/runs/{run_id}/exports/{answer['exportId']}")
        if answer.get("status") == "failed":
            raise ExportFailed(answer)
        if answer.get("status") == "running":
            raise TimeoutError(f"export {answer['exportId']} still running")
        return answer

    def download(self, url: str, target: Path) -> int:
        """Stream a SAS link to a file with a plain GET (no key: the link is the credential)."""
        with httpx.stream("GET", url, timeout=TIMEOUT_SECONDS) as response:
            response.raise_for_status()
            with target.open("wb") as file:
                for chunk in response.iter_bytes():
                    file.write(chunk)
        return target.stat().st_size

    def _pages(self, path: str, filters: dict[str, Any]) -> Iterator[dict[str, Any]]:
        params = {key: value for key, value in filters.items() if value is not None}
        while True:
            page = self._call("GET", path, params=params)
            yield from page["items"]
            if not page.get("nextCursor"):
                return
            params["cursor"] = page["nextCursor"]
