"""Indexing like the Python worker and validation like the host: what an app may not do."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func
import pytest

from devhost.loader import AppIndexError, TimerTriggerInfo, import_app, index_app
from tests.devhost.conftest import ROOT, child_env, copy_app, run_devhost_to_exit

SCRIPT = Path(__file__)


def index(app: func.FunctionApp, **options: object) -> list[str]:
    indexed = index_app(app, SCRIPT, route_prefix="api", **options)  # type: ignore[arg-type]
    return [entry.name for entry in indexed.functions]


def refused(app: func.FunctionApp) -> str:
    with pytest.raises(AppIndexError) as caught:
        index_app(app, SCRIPT, route_prefix="api")
    return str(caught.value)


def test_functions_are_indexed_in_name_order_with_their_bindings() -> None:
    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    bp = df.Blueprint()

    @bp.route(route="b", methods=["GET"])
    def zeta(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse()

    @app.route(route="start")
    @app.durable_client_input(client_name="client")
    async def Alpha(
        req: func.HttpRequest, client: df.DurableOrchestrationClient
    ) -> func.HttpResponse:
        return func.HttpResponse()

    @app.orchestration_trigger(context_name="context")
    def beta(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        return None

    @app.activity_trigger(input_name="value", activity="renamed")
    def gamma(value: str) -> str:
        return value

    app.register_functions(bp)

    indexed = index_app(app, SCRIPT, route_prefix="api")

    assert [entry.name for entry in indexed.functions] == ["Alpha", "beta", "gamma", "zeta"]
    alpha = indexed.function("Alpha")
    assert alpha.is_async and alpha.durable_clients == {"client": None}
    assert alpha.http is not None and alpha.http.methods is None
    assert alpha.http.auth_level == "anonymous"
    assert indexed.function("gamma").durable_name == "renamed"
    # a blueprint's routes take the app's level when they set none
    assert indexed.function("zeta").http.auth_level == "anonymous"  # type: ignore[union-attr]
    assert [route.function_name for route in indexed.routes] == ["Alpha", "zeta"]
    assert indexed.uses_durable


def test_allow_list_from_host_json_functions() -> None:
    app = func.FunctionApp()

    @app.route(route="one")
    def one(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse()

    @app.route(route="two")
    def two(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse()

    assert index(app, allow_list=["TWO"]) == ["two"]


def test_an_out_parameter_can_carry_the_http_response() -> None:
    app = func.FunctionApp()

    @app.route(route="out", binding_arg_name="res")
    def out(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
        res.set(func.HttpResponse("x"))

    indexed = index_app(app, SCRIPT, route_prefix="api")

    assert indexed.function("out").http_output == "res"


def test_a_parameter_without_a_binding_is_refused() -> None:
    app = func.FunctionApp()

    @app.route(route="extra")
    def extra(req: func.HttpRequest, page: int = 1) -> func.HttpResponse:
        return func.HttpResponse()

    assert refused(app) == (
        "Worker failed to index functions: FunctionLoadError: cannot load the extra function: "
        "the following parameters are declared in Python but not in function.json: {'page'}"
    )


def test_an_annotation_the_binding_cannot_supply_is_refused() -> None:
    app = func.FunctionApp()

    @app.route(route="typed")
    def typed(req: int) -> func.HttpResponse:
        return func.HttpResponse()

    assert (
        'type of req binding in function.json "httpTrigger" does not match its Python '
        'annotation "int"' in refused(app)
    )


def test_a_context_parameter_must_be_a_context() -> None:
    app = func.FunctionApp()

    @app.route(route="ctx")
    def ctx(req: func.HttpRequest, context: str) -> func.HttpResponse:
        return func.HttpResponse()

    assert 'the "context" parameter is expected to be of type azure.functions.Context' in refused(
        app
    )


def test_a_return_annotation_must_suit_the_http_output() -> None:
    app = func.FunctionApp()

    @app.route(route="none")
    def none(req: func.HttpRequest) -> None:
        return None

    assert 'Python return annotation "NoneType" does not match binding type "http"' in refused(app)


def test_host_validation_of_names_and_routes() -> None:
    app = func.FunctionApp()

    @app.function_name("9lives")
    @app.route(route="cats")
    def cats(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse()

    @app.route(route="runtime/status")
    def status(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse()

    @app.route(route="runs", methods=["GET", "POST"])
    def runs_a(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse()

    @app.route(route="/Runs/", methods=["POST"])
    def runs_b(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse()

    @app.route(route="under", trigger_arg_name="my_req")
    def under(my_req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse()

    @app.route(route="bad/{id:nosuch}")
    def template(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse()

    message = refused(app)

    assert message.startswith("The following 5 functions are in error:")
    assert "9lives: '9lives' is not a valid function name." in message
    assert "status: The specified route conflicts with one or more built in routes." in message
    assert (
        "runs_b: The route specified conflicts with the route defined by function 'runs_a'."
        in message
    )
    assert "under: The binding name my_req is invalid." in message
    assert "template: The constraint reference 'nosuch' could not be resolved" in message


def test_triggers_and_bindings_devhost_cannot_serve_are_refused() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
    def dequeue(msg: func.QueueMessage) -> None:
        return None

    @app.route(route="queue")
    @app.queue_output(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
    def enqueue(req: func.HttpRequest, msg: func.Out[str]) -> func.HttpResponse:
        return func.HttpResponse()

    message = refused(app)

    assert "dequeue: devhost does not support 'queueTrigger' triggers" in message
    assert "enqueue: devhost does not support 'queue' bindings (msg)." in message


def test_timer_functions_are_indexed_with_their_schedule_and_durable_client() -> None:
    app = df.DFApp()

    @app.timer_trigger(schedule="%CLEANUP_SCHEDULE%", arg_name="timer", run_on_startup=True)
    @app.durable_client_input(client_name="client")
    async def cleanup(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
        return None

    @app.schedule(schedule="0 */5 * * * *", arg_name="timer", use_monitor=False)
    def tick(timer: func.TimerRequest) -> None:
        return None

    indexed = index_app(app, SCRIPT, route_prefix="api")

    cleanup_info, tick_info = (entry.info() for entry in indexed.functions)
    assert cleanup_info.timer == TimerTriggerInfo("timer", "%CLEANUP_SCHEDULE%", True, True)
    assert cleanup_info.durable_clients == {"client": None}
    assert tick_info.timer == TimerTriggerInfo("timer", "0 */5 * * * *", False, False)
    assert indexed.routes == []


def test_the_script_must_define_exactly_one_app(tmp_path: Path) -> None:
    (tmp_path / "two_apps.py").write_text(
        "import azure.functions as func\na = func.FunctionApp()\nb = func.FunctionApp()\n"
    )
    (tmp_path / "no_app.py").write_text("import azure.functions as func\n")

    try:
        with pytest.raises(AppIndexError, match="More than one FunctionApp"):
            import_app(tmp_path, "two_apps.py")
        with pytest.raises(AppIndexError, match="Could not find top level function app"):
            import_app(tmp_path, "no_app.py")
        with pytest.raises(AppIndexError, match=r"No function_app\.py in"):
            import_app(tmp_path, "function_app.py")
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("two_apps", "no_app"):
            sys.modules.pop(name, None)


# -- the real thing: devhost refuses to start --------------------------------------------------


def test_devhost_exits_on_a_parameter_without_binding(tmp_path: Path) -> None:
    result = run_devhost_to_exit(copy_app(tmp_path, "missing_binding"))

    assert result.returncode == 1
    assert (
        "cannot load the broken function: the following parameters are declared in Python but "
        "not in function.json: {'extra'}" in result.stderr
    )
    assert "Functions:" not in result.stdout


def test_devhost_exits_on_duplicate_function_names(tmp_path: Path) -> None:
    result = run_devhost_to_exit(copy_app(tmp_path, "duplicate_names"))

    assert result.returncode == 1
    assert "Function twin does not have a unique function name" in result.stderr


def test_devhost_exits_on_routes_and_binding_names_the_host_refuses(tmp_path: Path) -> None:
    result = run_devhost_to_exit(copy_app(tmp_path, "bad_route"))

    assert result.returncode == 1
    assert "The following 2 functions are in error:" in result.stderr
    assert "snake: The binding name my_request is invalid." in result.stderr
    assert "tools: The specified route conflicts with one or more built in routes." in result.stderr


def test_devhost_exits_on_configuration_the_host_refuses(tmp_path: Path) -> None:
    no_version = run_devhost_to_exit(copy_app(tmp_path, "http_app", host_json={"extensions": {}}))
    encrypted = run_devhost_to_exit(
        copy_app(tmp_path, "http_app", settings={"Values": {"A": "AQAAANCMnd8B"}})
    )
    no_storage = run_devhost_to_exit(copy_app(tmp_path, "durable_app"), TEST_TASK_HUB="hub")

    assert no_version.returncode == 1
    assert "missing the required 'version' property" in no_version.stderr
    assert encrypted.returncode == 1
    assert "settings are encrypted" in encrypted.stderr
    assert no_storage.returncode == 1
    assert "Storage connection 'Storage' is not set" in no_storage.stderr


def test_devhost_exits_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "devhost",
                "--app",
                str(copy_app(tmp_path, "http_app")),
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert result.returncode == 1
    assert f"Port {port} is unavailable" in result.stderr
