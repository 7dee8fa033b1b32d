"""Health of a deployment: storage, providers, the Durable queue and this worker.

Every check is bounded by a short timeout and reports what it saw rather than raising, so a
health answer always arrives. Nothing here returns a secret: provider keys appear only as the
names of the variables that hold them, and error texts are scrubbed of every configured key.

Provider checks make the cheapest authenticated call each API allows (a model listing) and are
cached in-process for five minutes per provider; `refresh` checks again, except that a result
younger than `MIN_REFRESH_SECONDS` is reused, so an anonymous caller cannot turn the endpoint
into a stream of provider calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import logging
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.paging import ItemPaged
from pydantic import Field

from evalruns.domain.base import ApiModel, utcnow
from evalruns.domain.runs import ACTIVE
from evalruns.providers.base import ProviderError
from evalruns.providers.catalog import MOCK_API, Catalog, ProviderInfo, UnknownModelError
from evalruns.providers.http_errors import MIN_REDACTED_KEY_LENGTH, REDACTED
from evalruns.providers.registry import ProviderNotConfiguredError, check_provider
from evalruns.services.container import Services
from evalruns.settings import UNRESOLVED_KEY_VAULT_REFERENCE, Settings

log = logging.getLogger(__name__)

PROVIDER_CACHE_SECONDS = 300.0
MIN_REFRESH_SECONDS = 10.0
# The provider's own timeout for its check, so a slow provider is a classified TIMEOUT naming its
# host. httpx applies it to each phase (connect, then read), so the whole check is abandoned only
# after twice as long, as a backstop.
PROVIDER_CHECK_TIMEOUT_SECONDS = 5.0
PROVIDER_CHECK_PHASES = 2
# Per connect and per read, without retries; the whole call is abandoned after the wait.
STORAGE_TIMEOUT_SECONDS = 3.0
STORAGE_WAIT_SECONDS = 7.0
QUEUE_TIMEOUT_SECONDS = 10.0
# A Pending instance has not been picked up by any worker yet; this long means none is coming.
STUCK_PENDING_AFTER = timedelta(minutes=5)
# The Durable extension answers an instance query with one page of at most this many, and the
# Python client does not follow the continuation token.
INSTANCE_PAGE_SIZE = 100
RUNTIME_STATUSES = (
    "Pending",
    "Running",
    "Suspended",
    "ContinuedAsNew",
    "Completed",
    "Failed",
    "Terminated",
)
PACKAGES = (
    "evalruns",
    "azure-functions",
    "azure-functions-durable",
    "azure-data-tables",
    "azure-storage-blob",
    "httpx",
    "pydantic",
)
NOT_CONFIGURED = "NOT_CONFIGURED"
NO_PROVIDER_WARNING = "no provider keys configured: only mock models are available"
NO_ACTIVITY_BACKLOG = (
    "the Durable client API does not report how many activity or orchestration messages wait "
    "in the task hub's queues; see the backend instead (Azure Storage: the lengths of the "
    "queues <taskhub>-workitems and <taskhub>-control-NN; Durable Task Scheduler: its "
    "dashboard)"
)


# -- models ---------------------------------------------------------------------------------


class ServiceCheck(ApiModel):
    ok: bool
    latency_ms: int
    error: str | None = None


class StorageHealth(ApiModel):
    status: Literal["ok", "unreachable"]
    tables: ServiceCheck
    blobs: ServiceCheck
    unreadable_records: int | None = Field(
        default=None,
        description="stored rows that listings skipped because they could not be loaded "
        "(kept with their keys in the Incidents table); null when storage is unreachable",
    )


class ProviderHealth(ApiModel):
    id: str
    name: str
    configured: bool
    connected: bool
    error: str | None = None
    error_code: str | None = None
    last_checked: datetime
    latency_ms: int | None = None


class ProviderHealthReport(ApiModel):
    status: Literal["ok", "degraded"]
    items: list[ProviderHealth]


class InstanceAge(ApiModel):
    instance_id: str
    name: str
    runtime_status: str
    created_time: datetime
    last_updated_time: datetime | None = None
    age_seconds: int


class ActivityBacklog(ApiModel):
    available: bool
    detail: str


class QueueHealth(ApiModel):
    status: Literal["ok", "stuck", "unknown"]
    instances: dict[str, int]
    lower_bounds: list[str]
    by_name: dict[str, dict[str, int]]
    oldest_pending: InstanceAge | None = None
    oldest_running: InstanceAge | None = None
    stuck_pending: int
    stuck_after_seconds: int
    activity_backlog: ActivityBacklog
    disagreeing_records: int | None = Field(
        default=None,
        description="live run records whose orchestration has ended (terminated, failed or "
        "completed outside the API); the sweeper and the next read of each fix them",
    )
    error: str | None = None
    checked_at: datetime


class WorkerHealth(ApiModel):
    python: str
    implementation: str
    platform: str
    packages: dict[str, str | None]
    configured_keys: list[str]
    configured_settings: list[str]
    available_providers: list[str]
    warnings: list[str]


class ProviderSummary(ApiModel):
    status: Literal["ok", "degraded"]
    connected: list[str]
    failing: dict[str, str]
    not_configured: list[str]


class WorkerSummary(ApiModel):
    warnings: list[str]


class HealthChecks(ApiModel):
    storage: StorageHealth
    providers: ProviderSummary
    queue: QueueHealth
    workers: WorkerSummary


class HealthReport(ApiModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    checks: HealthChecks
    checked_at: datetime


# -- overall --------------------------------------------------------------------------------


async def overall_health(
    services: Services, instances: InstanceListing, environ: Mapping[str, str] | None = None
) -> HealthReport:
    """Every check at once: unhealthy without storage, degraded when a configured provider is
    not connected, the queue is stuck or unreadable, or a stored row could not be loaded."""
    storage, providers, queue = await asyncio.gather(
        storage_health(services),
        provider_health(services.settings, services.catalog),
        queue_health(instances, services=services),
    )
    workers = worker_health(services.settings, services.catalog, environ)
    status: Literal["healthy", "degraded", "unhealthy"] = "healthy"
    if storage.status != "ok":
        status = "unhealthy"
    elif providers.status != "ok" or queue.status != "ok" or storage.unreadable_records:
        status = "degraded"
    checks = HealthChecks(
        storage=storage,
        providers=_summary(providers),
        queue=queue,
        workers=WorkerSummary(warnings=workers.warnings),
    )
    return HealthReport(status=status, checks=checks, checked_at=utcnow())


def _summary(report: ProviderHealthReport) -> ProviderSummary:
    return ProviderSummary(
        status=report.status,
        connected=[item.id for item in report.items if item.connected],
        failing={
            item.id: item.error_code or "ERROR"
            for item in report.items
            if item.configured and not item.connected
        },
        not_configured=[item.id for item in report.items if not item.configured],
    )


# -- storage --------------------------------------------------------------------------------


async def storage_health(services: Services) -> StorageHealth:
    """One cheap listing call each against Table and Blob storage, in parallel, no retries."""
    storage = services.storage
    request: dict[str, Any] = {
        "results_per_page": 1,
        "connection_timeout": STORAGE_TIMEOUT_SECONDS,
        "read_timeout": STORAGE_TIMEOUT_SECONDS,
        "retry_total": 0,
    }
    tables, blobs = await asyncio.gather(
        _timed(services, "tables", lambda: _first_page(storage.tables.list_tables(**request))),
        _timed(services, "blobs", lambda: _first_page(storage.blobs.list_containers(**request))),
    )
    status: Literal["ok", "unreachable"] = "ok" if tables.ok and blobs.ok else "unreachable"
    unreadable = None
    if tables.ok:
        try:
            unreadable = await asyncio.wait_for(
                services.run_io(services.incidents.count), STORAGE_WAIT_SECONDS
            )
        except Exception:
            log.warning("storage health: could not count incidents", exc_info=True)
    return StorageHealth(status=status, tables=tables, blobs=blobs, unreadable_records=unreadable)


def _first_page(pager: ItemPaged[Any]) -> None:
    list(next(pager.by_page()))


async def _timed(services: Services, label: str, call: Callable[[], None]) -> ServiceCheck:
    started = time.monotonic()
    try:
        # The thread stops on its own timeouts; this bounds the wait if it does not.
        await asyncio.wait_for(services.run_io(call), STORAGE_WAIT_SECONDS)
        error = None
    except TimeoutError:
        error = f"no answer within {STORAGE_WAIT_SECONDS:g}s"
    except Exception as exc:
        log.warning("storage health: %s failed", label, exc_info=True)
        error = _storage_error(exc)
    latency = _millis(started)
    return ServiceCheck(ok=error is None, latency_ms=latency, error=error)


def _storage_error(exc: Exception) -> str:
    """A description without the SDK's message, which can quote a URL with a SAS token."""
    if isinstance(exc, HttpResponseError):
        error_code = getattr(exc, "error_code", None)
        return f"HTTP {exc.status_code}" + (f" ({error_code})" if error_code else "")
    if isinstance(exc, ServiceRequestError):
        return f"cannot connect ({type(exc).__name__})"
    if isinstance(exc, ServiceResponseError):
        return f"no answer ({type(exc).__name__})"
    return f"failed ({type(exc).__name__})"


# -- providers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cached:
    fingerprint: str
    at: float  # time.monotonic()
    health: ProviderHealth


_provider_cache: dict[str, _Cached] = {}


def clear_provider_cache() -> None:
    _provider_cache.clear()


async def provider_health(
    settings: Settings, catalog: Catalog, *, refresh: bool = False
) -> ProviderHealthReport:
    """Every catalog provider, checked in parallel (or from the cache); degraded when a
    configured provider is not connected."""
    items = await asyncio.gather(
        *(_provider(info, settings, catalog, refresh) for info in catalog.providers.values())
    )
    secrets = _secrets(settings, catalog)
    items = [_scrubbed(item, secrets) for item in items]
    degraded = any(item.configured and not item.connected for item in items)
    return ProviderHealthReport(status="degraded" if degraded else "ok", items=items)


async def _provider(
    info: ProviderInfo, settings: Settings, catalog: Catalog, refresh: bool
) -> ProviderHealth:
    missing = info.missing_settings(settings)
    if missing:
        return ProviderHealth(
            id=info.id,
            name=info.name,
            configured=False,
            connected=False,
            error=f"not configured: set {' and '.join(missing)}",
            error_code=NOT_CONFIGURED,
            last_checked=utcnow(),
        )
    fingerprint = _fingerprint(info, settings)
    cached = _provider_cache.get(info.id)
    if cached is not None and cached.fingerprint == fingerprint:
        age = time.monotonic() - cached.at
        if age < (MIN_REFRESH_SECONDS if refresh else PROVIDER_CACHE_SECONDS):
            return cached.health
    health = await _check(info, settings, catalog)
    _provider_cache[info.id] = _Cached(fingerprint, time.monotonic(), health)
    return health


async def _check(info: ProviderInfo, settings: Settings, catalog: Catalog) -> ProviderHealth:
    started = time.monotonic()
    error: str | None = None
    code: str | None = None
    deadline = PROVIDER_CHECK_TIMEOUT_SECONDS * PROVIDER_CHECK_PHASES
    try:
        await asyncio.wait_for(
            check_provider(
                info.id, settings, catalog, timeout_seconds=PROVIDER_CHECK_TIMEOUT_SECONDS
            ),
            deadline,
        )
    except ProviderError as exc:
        error, code = exc.message, exc.code.value
    except TimeoutError:
        error, code = f"no answer within {deadline:g}s", "TIMEOUT"
    except ProviderNotConfiguredError as exc:  # settings changed between the two reads
        error, code = str(exc), NOT_CONFIGURED
    except Exception as exc:
        log.exception("health check of provider %s failed unexpectedly", info.id)
        error, code = f"the check failed ({type(exc).__name__}); see the logs", "ERROR"
    return ProviderHealth(
        id=info.id,
        name=info.name,
        configured=True,
        connected=error is None,
        error=error,
        error_code=code,
        last_checked=utcnow(),
        latency_ms=_millis(started),
    )


def _fingerprint(info: ProviderInfo, settings: Settings) -> str:
    """A digest of what the check depends on, so changed settings are checked afresh."""
    parts = (
        info.resolve_base_url(settings),
        info.resolve_api_key(settings),
        info.resolve_api_version(settings),
    )
    return hashlib.sha256("\0".join(part or "" for part in parts).encode()).hexdigest()


def _secrets(settings: Settings, catalog: Catalog) -> list[str]:
    keys = (settings.provider_value(info.key_env) for info in catalog.providers.values())
    return sorted(
        {key for key in keys if len(key) >= MIN_REDACTED_KEY_LENGTH}, key=len, reverse=True
    )


def _scrubbed(item: ProviderHealth, secrets: Sequence[str]) -> ProviderHealth:
    """Belt and braces: provider errors are already redacted of their own key."""
    if item.error is None:
        return item
    error = item.error
    for secret in secrets:
        error = error.replace(secret, REDACTED)
    return item if error == item.error else item.model_copy(update={"error": error})


# -- queue ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrchestrationInstance:
    instance_id: str
    name: str
    runtime_status: str
    created_time: datetime | None
    last_updated_time: datetime | None


class InstanceListing(Protocol):
    """The Durable client's instance query (implemented by the HTTP layer)."""

    async def instances(self, runtime_status: str) -> Sequence[OrchestrationInstance]:
        """One page of the instances with this runtime status."""
        ...


async def queue_health(
    listing: InstanceListing, now: datetime | None = None, *, services: Services | None = None
) -> QueueHealth:
    """Instances by runtime status (one query per status, in parallel), the oldest Pending and
    Running ones, how many have been Pending too long, and (given `services`) how many live
    run records disagree with their ended orchestrations."""
    checked_at = now or utcnow()
    try:
        pages = await asyncio.wait_for(
            asyncio.gather(*(listing.instances(status) for status in RUNTIME_STATUSES)),
            QUEUE_TIMEOUT_SECONDS,
        )
    except Exception as exc:
        log.warning("queue health: the Durable client failed", exc_info=True)
        reason = (
            f"no answer within {QUEUE_TIMEOUT_SECONDS:g}s"
            if isinstance(exc, TimeoutError)
            else f"{type(exc).__name__}: {exc}"[:300]
        )
        return QueueHealth(
            status="unknown",
            instances={},
            lower_bounds=[],
            by_name={},
            stuck_pending=0,
            stuck_after_seconds=int(STUCK_PENDING_AFTER.total_seconds()),
            activity_backlog=ActivityBacklog(available=False, detail=NO_ACTIVITY_BACKLOG),
            error=f"the Durable client could not list instances: {reason}",
            checked_at=checked_at,
        )
    by_status = dict(zip(RUNTIME_STATUSES, pages, strict=True))
    by_name: dict[str, dict[str, int]] = {}
    for status, page in by_status.items():
        for instance in page:
            counts = by_name.setdefault(instance.name, {})
            counts[status] = counts.get(status, 0) + 1
    pending = _oldest(by_status["Pending"], checked_at)
    stuck = sum(
        1
        for instance in by_status["Pending"]
        if instance.created_time is not None
        and checked_at - _utc(instance.created_time) >= STUCK_PENDING_AFTER
    )
    ended = {
        instance.instance_id
        for status in ("Terminated", "Failed", "Completed")
        for instance in by_status[status]
    }
    disagreeing = None
    if services is not None:
        live = await services.run_io(_live_run_ids, services)
        disagreeing = len(live & ended)
    return QueueHealth(
        status="stuck" if stuck or disagreeing else "ok",
        disagreeing_records=disagreeing,
        instances={status: len(page) for status, page in by_status.items()},
        lower_bounds=[s for s, page in by_status.items() if len(page) >= INSTANCE_PAGE_SIZE],
        by_name=by_name,
        oldest_pending=pending,
        oldest_running=_oldest(by_status["Running"], checked_at),
        stuck_pending=stuck,
        stuck_after_seconds=int(STUCK_PENDING_AFTER.total_seconds()),
        activity_backlog=ActivityBacklog(available=False, detail=NO_ACTIVITY_BACKLOG),
        checked_at=checked_at,
    )


def _live_run_ids(services: Services) -> set[str]:
    """The ids of the newest live run records, one page per live status."""
    return {
        run.id
        for status in ACTIVE
        for run in services.runs.list(INSTANCE_PAGE_SIZE, None, status).items
    }


def _oldest(page: Sequence[OrchestrationInstance], now: datetime) -> InstanceAge | None:
    dated = [instance for instance in page if instance.created_time is not None]
    if not dated:
        return None
    oldest = min(dated, key=lambda instance: _utc(instance.created_time))
    created = _utc(oldest.created_time)
    return InstanceAge(
        instance_id=oldest.instance_id,
        name=oldest.name,
        runtime_status=oldest.runtime_status,
        created_time=created,
        last_updated_time=_utc(oldest.last_updated_time) if oldest.last_updated_time else None,
        age_seconds=max(0, int((now - created).total_seconds())),
    )


def _utc(moment: datetime | None) -> datetime:
    assert moment is not None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# -- worker ---------------------------------------------------------------------------------


def worker_health(
    settings: Settings, catalog: Catalog, environ: Mapping[str, str] | None = None
) -> WorkerHealth:
    """This worker's runtime, package versions, which provider variables are set (names only)
    and what an operator should fix. `environ`, when given, is checked for Key Vault
    references the platform could not resolve (settings drop them)."""
    providers = list(catalog.providers.values())
    key_names = {info.key_env for info in providers if info.key_env}
    set_names = [name for name in catalog.environment_variables() if settings.provider_value(name)]
    available = [info.id for info in providers if catalog.is_available(info.id, settings)]
    return WorkerHealth(
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        platform=platform.platform(),
        packages={name: _version(name) for name in PACKAGES},
        configured_keys=[name for name in set_names if name in key_names],
        configured_settings=[name for name in set_names if name not in key_names],
        available_providers=available,
        warnings=_warnings(settings, catalog, available, environ),
    )


def _warnings(
    settings: Settings,
    catalog: Catalog,
    available: list[str],
    environ: Mapping[str, str] | None,
) -> list[str]:
    warnings: list[str] = []
    if not settings.storage_connection and not settings.storage_account_name:
        warnings.append(
            "no storage configured: set AzureWebJobsStorage or AzureWebJobsStorage__accountName"
        )
    if all(catalog.providers[provider].api == MOCK_API for provider in available):
        warnings.append(NO_PROVIDER_WARNING)
    for name in catalog.environment_variables():
        if environ is not None and environ.get(name, "").startswith(UNRESOLVED_KEY_VAULT_REFERENCE):
            warnings.append(
                f"{name} is a Key Vault reference that did not resolve: check the secret "
                "exists and the app's identity may read it"
            )
    for info in catalog.providers.values():
        names = (info.key_env, info.base_url_env, info.api_version_env)
        partly = any(settings.provider_value(name) for name in names if name)
        missing = info.missing_settings(settings)
        if partly and missing:
            warnings.append(f"{info.name} is not available: set {' and '.join(missing)}")
    try:
        summariser = catalog.resolve(settings.summariser_model)
    except UnknownModelError as exc:
        warnings.append(f"EVALRUNS_SUMMARISER_MODEL: {exc}")
    else:
        if summariser.provider not in available:
            warnings.append(
                f"the summariser model {settings.summariser_model!r} needs provider "
                f"{summariser.provider!r}, which is not configured: decision texts will fail"
            )
    return warnings


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _millis(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
