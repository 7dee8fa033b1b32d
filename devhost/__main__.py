"""``python -m devhost [--app DIR] [--port 7071] [--host 127.0.0.1]``: ``func start``, locally.

Reads local.settings.json into the environment and host.json (with ``AzureFunctionsJobHost__``
overrides) like Core Tools, starts the Python worker process, which imports and indexes the app,
prints each function's URL, and serves until SIGINT/SIGTERM. Exits non-zero with a message on
anything the real host would refuse to start with.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ._wire import IndexRequest
from .config import (
    ConfigError,
    DevhostConfig,
    apply_host_environment,
    apply_local_settings,
    build_config,
    read_local_settings,
    resolve_connection_string,
)
from .durable._worker import EngineConfigurationError, FunctionCatalog
from .language_worker import LanguageWorker, RemoteInvoker
from .loader import AppIndexError, AppInfo, durable_client_hubs, validate_functions
from .logs import configure_logging
from .sockets import PortUnavailable, bind_rpc_socket, bind_socket

if TYPE_CHECKING:
    from .durable import DurableHost

# The engine and the HTTP server (aiohttp, the storage SDKs) are imported once the worker
# process is importing the app, so the two imports overlap.

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

admin routes: GET /admin/devhost/config, /admin/devhost/instances[/{id}], /admin/devhost/activities,
              /admin/host/status; POST /admin/functions/{name} {"input": ""} runs a timer now
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


def create_backend(config: DevhostConfig, index: AppInfo, worker: LanguageWorker) -> DurableHost:
    """The Durable engine for the app: ``DurableHost`` on the app's storage account, invoking
    the functions in the worker process."""
    from .durable import DurableHost

    connection_string = resolve_connection_string(config.storage_connection_name, os.environ)
    for hub in durable_client_hubs(index, dict(os.environ)):
        if hub.casefold() != config.hub_name.casefold():
            raise ConfigError(
                f"A durable client binding names task hub '{hub}', but devhost runs only the "
                f"app's task hub '{config.hub_name}'."
            )
    return DurableHost(
        FunctionCatalog.of_metadata(index.functions),
        invoker=RemoteInvoker(worker),
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
    worker = None
    try:
        port = int(public_socket.getsockname()[1])
        for message in apply_local_settings(settings, os.environ):
            print(message)
        apply_host_environment(os.environ, app_dir=app_dir, public_authority=f"localhost:{port}")
        os.chdir(app_dir)  # the worker runs functions with the app directory as cwd
        config = build_config(app_dir, os.environ)
        sys.stdout.flush()  # the worker shares this output
        worker = LanguageWorker.start(app_dir)
        worker.request_index(
            IndexRequest(
                app_dir=str(app_dir),
                script_file=config.script_file,
                allow_list=config.functions_allow_list,
                log_level=config.log_level,
                activity_threads=config.max_concurrent_activities,
                orchestrator_threads=config.max_concurrent_orchestrators,
            )
        )
        from .http_host import DevHost

        indexed = worker.index()
        index = AppInfo(
            indexed.functions,
            validate_functions(indexed.functions, route_prefix=config.route_prefix),
        )
        backend = None
        if index.uses_durable:
            backend = create_backend(config, index, worker)
            rpc_socket = bind_rpc_socket()
        host = DevHost(config, index, backend, public_socket, worker=worker, rpc_socket=rpc_socket)
    except (ConfigError, AppIndexError, EngineConfigurationError, PortUnavailable) as error:
        public_socket.close()
        if rpc_socket is not None:
            rpc_socket.close()
        if worker is not None:
            worker.kill()
        print(f"devhost: error: {error}", file=sys.stderr)
        return 1
    configure_logging(config.log_level)
    from .http_host import EngineStartError, run_until_signalled

    try:
        asyncio.run(run_until_signalled(host))
    except KeyboardInterrupt:
        return 130
    except EngineStartError as error:
        print(f"devhost: error: {error}", file=sys.stderr)
        return 1
    if host.failure is not None:
        print(f"devhost: error: {host.failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
