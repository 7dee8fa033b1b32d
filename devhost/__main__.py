"""``python -m devhost [--app DIR] [--port 7071] [--host 127.0.0.1]``: ``func start``, locally.

Reads local.settings.json into the environment and host.json (with ``AzureFunctionsJobHost__``
overrides) like Core Tools, imports and indexes the app like the Python worker, prints each
function's URL, and serves until SIGINT/SIGTERM. Exits non-zero with a message on anything the
real host would refuse to start with.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
import time
from pathlib import Path

from .config import (
    ConfigError,
    DevhostConfig,
    apply_host_environment,
    apply_local_settings,
    build_config,
    read_local_settings,
    resolve_connection_string,
)
from .durable import DurableHost, EngineConfigurationError
from .http_host import (
    DevHost,
    EngineStartError,
    PortUnavailable,
    bind_rpc_socket,
    bind_socket,
    run_until_signalled,
)
from .loader import AppIndex, AppIndexError, durable_client_hubs, load_app

DEFAULT_PORT = 7071
DEFAULT_ADDRESS = "127.0.0.1"


EPILOG = """\
settings (environment or local.settings.json Values; existing environment variables win):
  AzureWebJobsStorage       storage for Durable state (UseDevelopmentStorage=true: Azurite)
  AzureFunctionsJobHost__*  host.json overrides, e.g.
                            AzureFunctionsJobHost__extensions__durableTask__maxConcurrentActivityFunctions
  PYTHON_SCRIPT_FILE_NAME   the app's script (default function_app.py)
  PYTHON_THREADPOOL_THREAD_COUNT  threads for sync functions
  DEVHOST_FUNCTION_KEY      require this key (x-functions-key or ?code=) on function-level routes
  DEVHOST_MASTER_KEY        the key for admin-level routes and /admin (default: the function key)
  DEVHOST_SYSTEM_KEY        the Durable webhooks' key in client URLs (default: random per start)

admin routes: GET /admin/devhost/config, /admin/devhost/instances[/{id}], /admin/host/status
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devhost",
        description="Run a Python v2-model Azure Functions app (with Durable Functions) locally.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--app", default=".", help="the function app directory (default: .)")
    parser.add_argument(
        "--port",
        "-p",
        type=int,
        default=None,
        help=f"local port to listen on (default: local.settings.json Host.LocalHttpPort, "
        f"else {DEFAULT_PORT}; 0 picks a free port)",
    )
    parser.add_argument(
        "--host",
        "--address",
        dest="host",
        default=DEFAULT_ADDRESS,
        help=f"local IP address to bind to (default: {DEFAULT_ADDRESS})",
    )
    return parser.parse_args(argv)


def create_backend(config: DevhostConfig, index: AppIndex) -> DurableHost:
    """The Durable engine for the app: ``DurableHost`` on the app's storage account."""
    connection_string = resolve_connection_string(config.storage_connection_name, os.environ)
    for hub in durable_client_hubs(index, dict(os.environ)):
        if hub.casefold() != config.hub_name.casefold():
            raise ConfigError(
                f"A durable client binding names task hub '{hub}', but devhost runs only the "
                f"app's task hub '{config.hub_name}'."
            )
    return DurableHost(
        index.app,
        task_hub=config.hub_name,
        connection_string=connection_string,
        max_concurrent_activities=config.max_concurrent_activities,
        max_concurrent_orchestrators=config.max_concurrent_orchestrators,
        system_key=config.system_key or secrets.token_urlsafe(32),
        connection_name=config.storage_connection_name,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    app_dir = Path(args.app).resolve()
    if not app_dir.is_dir():
        print(f"devhost: error: {app_dir} is not a directory", file=sys.stderr)
        return 2
    try:
        settings = read_local_settings(app_dir)
        port = args.port if args.port is not None else settings.local_http_port or DEFAULT_PORT
        public_socket = bind_socket(args.host, port)
    except (ConfigError, PortUnavailable) as error:
        print(f"devhost: error: {error}", file=sys.stderr)
        return 1
    rpc_socket = None
    try:
        port = int(public_socket.getsockname()[1])
        for message in apply_local_settings(settings, os.environ):
            print(message)
        apply_host_environment(os.environ, app_dir=app_dir, public_authority=f"localhost:{port}")
        os.chdir(app_dir)  # the worker runs functions with the app directory as cwd
        config = build_config(app_dir, os.environ, local_http_port=port)
        index = load_app(
            app_dir,
            script_file=config.script_file,
            route_prefix=config.route_prefix,
            allow_list=config.functions_allow_list,
        )
        backend = None
        if index.uses_durable:
            backend = create_backend(config, index)
            rpc_socket = bind_rpc_socket()
        host = DevHost(config, index, backend, public_socket, rpc_socket=rpc_socket)
    except (ConfigError, AppIndexError, EngineConfigurationError, PortUnavailable) as error:
        public_socket.close()
        if rpc_socket is not None:
            rpc_socket.close()
        print(f"devhost: error: {error}", file=sys.stderr)
        return 1
    configure_logging(config.log_level)
    try:
        asyncio.run(run_until_signalled(host))
    except KeyboardInterrupt:
        return 130
    except EngineStartError as error:
        print(f"devhost: error: {error}", file=sys.stderr)
        return 1
    return 0


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def configure_logging(level: int) -> None:
    """Function and engine logs on stdout, at host.json's ``logging.logLevel.default``."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_UtcFormatter("[%(asctime)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("azure", "aiohttp.access", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


if __name__ == "__main__":
    sys.exit(main())
