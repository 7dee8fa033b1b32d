"""HTTP triggers on devhost, over real HTTP: routing, requests, responses, settings, keys.

One devhost child serves the HTTP fixture app for the module; tests that need other settings
(keys, overrides) start their own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.devhost.conftest import Devhost, child_env, copy_app, poll, start_devhost

SETTINGS = {
    "IsEncrypted": False,
    "Values": {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "GREETING": "hello from local.settings.json",
        "OVERRIDDEN": "from local.settings.json",
        "NUMBER": 42,
        "FLAG": True,
    },
    "ConnectionStrings": {"Reporting": "Server=reports;Database=x"},
}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devhost]:
    directory = tmp_path_factory.mktemp("http")
    app_dir = copy_app(directory, "http_app", settings=SETTINGS)
    env = child_env(OVERRIDDEN="from the environment")
    started = start_devhost(app_dir, directory / "devhost.log", env)
    yield started
    started.stop()


def describe(response: httpx.Response) -> dict[str, object]:
    assert response.status_code == 200, response.text
    payload: dict[str, object] = response.json()
    return payload


def test_prints_each_function_url_like_func_start(host: Devhost) -> None:
    port = host.url.rsplit(":", 1)[1]
    output = host.output()

    assert "\nFunctions:\n\n" in output
    assert f"\techo: [GET,POST] http://localhost:{port}/api/echo/{{id:int}}\n\n" in output
    assert f"\tcatch_all:  http://localhost:{port}/api/rest/{{*path}}\n\n" in output
    listed = re.findall(r"^\t(\w+):", output, re.M)
    assert listed == sorted(listed, key=str.casefold)
    assert f"devhost ready: http://localhost:{port}" in output


def test_route_values_query_headers_and_body_reach_the_function(host: Devhost) -> None:
    response = host.post(
        "/api/echo/42?a=1&a=2&A=3&empty=&b=x+y",
        content=b"raw \xe2\x9c\x93 body",
        headers={"X-Test": "yes", "Content-Type": "text/plain"},
    )

    seen = describe(response)
    assert seen["method"] == "POST"
    assert seen["url"] == f"{host.url}/api/echo/42?a=1&a=2&A=3&empty=&b=x+y"
    assert seen["route_params"] == {"id": "42"}
    assert seen["params"] == {"a": "1,2,3", "b": "x y"}  # keys ignore case; empty values dropped
    headers = seen["headers"]
    assert isinstance(headers, dict)
    assert headers["x-test"] == "yes"
    assert headers["content-type"] == "text/plain"
    assert seen["body"] == "raw ✓ body"


def test_a_request_without_body_gives_an_empty_body(host: Devhost) -> None:
    assert describe(host.get("/api/echo/1"))["body"] == ""


def test_route_constraints_unknown_paths_and_the_prefix(host: Devhost) -> None:
    assert host.get("/api/echo/abc").status_code == 404
    assert host.get("/api/echo/2147483648").status_code == 404
    assert host.get("/api/echo/1/2").status_code == 404
    assert host.get("/api/nowhere").status_code == 404
    assert host.get("/echo/1").status_code == 404
    missing = host.get("/api/nowhere")
    assert missing.content == b""


def test_a_method_outside_the_trigger_methods_is_a_404(host: Devhost) -> None:
    assert host.request("DELETE", "/api/echo/1").status_code == 404
    assert host.request("PUT", "/api/echo/1").status_code == 404
    anything = host.request("PATCH", "/api/rest/a/b")
    assert describe(anything)["route_params"] == {"path": "a/b"}
    assert describe(anything)["method"] == "PATCH"


def test_optional_complex_and_case_insensitive_routes(host: Devhost) -> None:
    assert host.get("/api/items/books").json() == {"category": "books"}
    assert host.get("/api/items/books/2").json() == {"category": "books", "page": "2"}
    assert host.get("/API/Items/books/").json() == {"category": "books"}
    assert host.get("/api/items/b00ks").status_code == 404
    assert host.get("/api/files/report.tar.gz").json() == {"name": "report.tar", "ext": "gz"}
    assert host.get("/api/files/readme").json() == {"name": "readme"}


def test_routes_are_tried_in_function_name_order(host: Devhost) -> None:
    # `items` sorts before `items_new`, so its `{category:alpha}` takes "new" first: the host
    # orders functions by name and the first matching route wins.
    assert host.get("/api/items/new").json() == {"category": "new"}


def test_the_response_status_headers_cookies_and_charset(host: Devhost) -> None:
    response = host.get("/api/respond/201")

    assert response.status_code == 201
    assert response.headers["x-custom"] == "yes"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.content == "héllo".encode()
    assert response.headers["set-cookie"] == "session=abc; path=/app; httponly"
    assert host.get("/api/respond/404").status_code == 404


def test_binary_bodies_strings_and_out_bindings(host: Devhost) -> None:
    binary = host.get("/api/binary")
    plain = host.get("/api/plain")
    out = host.get("/api/out")

    assert binary.content == bytes(range(256))
    assert binary.headers["content-type"] == "application/octet-stream"
    assert (plain.status_code, plain.text) == (200, "just a string")
    assert plain.headers["content-type"] == "text/plain; charset=utf-8"
    assert (out.status_code, out.text) == (202, "via the out binding")


def test_a_failing_function_is_a_500_with_an_empty_body(host: Devhost) -> None:
    failed = host.get("/api/boom")
    nothing = host.get("/api/nothing")  # None for the $return http binding cannot be encoded

    assert (failed.status_code, failed.content) == (500, b"")
    assert (nothing.status_code, nothing.content) == (500, b"")
    output = host.output()
    assert "Executed 'Functions.boom' (Failed" in output
    assert "RuntimeError: the function failed" in output


def test_local_settings_reach_the_functions_but_the_environment_wins(host: Devhost) -> None:
    def setting(name: str) -> object:
        return host.get(f"/api/settings/{name}").json()[name]

    assert setting("GREETING") == "hello from local.settings.json"
    assert setting("OVERRIDDEN") == "from the environment"
    assert setting("NUMBER") == "42"
    assert setting("FLAG") == "True"
    assert setting("ConnectionStrings:Reporting") == "Server=reports;Database=x"
    assert setting("WEBSITE_HOSTNAME") == f"localhost:{host.url.rsplit(':', 1)[1]}"
    assert setting("AZURE_FUNCTIONS_ENVIRONMENT") == "Development"
    assert (
        "Skipping 'OVERRIDDEN' from local settings as it's already defined in current "
        "environment variables." in host.output()
    )


def test_a_context_parameter_gets_the_invocation_context(host: Devhost) -> None:
    first = host.get("/api/context").json()
    second = host.get("/api/context").json()

    assert first["function_name"] == "with_context"
    assert uuid.UUID(first["invocation_id"]) != uuid.UUID(second["invocation_id"])
    assert Path(first["cwd"]).name.startswith("http_app-")  # functions run in the app directory


def test_keys_are_not_enforced_by_default(host: Devhost) -> None:
    assert host.get("/api/secured").text == "secured"
    assert host.get("/api/keys/admin").text == "admin"
    assert host.get("/").status_code == 200
    assert host.get("/admin/devhost/config").json()["functionKeysEnforced"] is False


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Devhost]]:
    started: list[Devhost] = []

    def run(**env: str) -> Devhost:
        app_dir = copy_app(tmp_path, "http_app", settings=SETTINGS)
        devhost = start_devhost(app_dir, tmp_path / f"{len(started)}.log", child_env(**env))
        started.append(devhost)
        return devhost

    yield run
    for devhost in started:
        devhost.stop()


def test_a_function_key_is_required_on_non_anonymous_routes(start: Callable[..., Devhost]) -> None:
    host = start(DEVHOST_FUNCTION_KEY="fkey", DEVHOST_MASTER_KEY="mkey")

    assert (host.get("/api/secured").status_code, host.get("/api/secured").content) == (401, b"")
    assert host.get("/api/secured", headers={"x-functions-key": "fkey"}).text == "secured"
    assert host.get("/api/secured?code=fkey").text == "secured"
    assert host.get("/api/secured?code=mkey").text == "secured"
    assert host.get("/api/secured?code=wrong").status_code == 401
    # the header is read first: a wrong header is not rescued by a right code
    assert host.get("/api/secured?code=fkey", headers={"x-functions-key": "no"}).status_code == 401
    assert host.get("/api/open").text == "open"
    assert host.get("/api/keys/admin?code=fkey").status_code == 401
    assert host.get("/api/keys/admin?code=mkey").text == "admin"
    assert host.get("/api/nowhere").status_code == 404  # routing comes before keys
    assert host.get("/admin/devhost/config").status_code == 401
    assert host.get("/admin/devhost/config?code=mkey").json()["functionKeysEnforced"] is True
    assert host.stop() == 0


def test_host_json_overrides_from_the_environment(start: Callable[..., Devhost]) -> None:
    host = start(AzureFunctionsJobHost__extensions__http__routePrefix="v1")

    assert host.get("/v1/echo/7").json()["route_params"] == {"id": "7"}
    assert host.get("/api/echo/7").status_code == 404
    assert host.get("/admin/devhost/config").json()["routePrefix"] == "v1"
    assert "/v1/echo/{id:int}" in host.output()


def test_the_admin_config_route_never_shows_secrets(host: Devhost) -> None:
    config = host.get("/admin/devhost/config").json()

    assert "AccountKey" not in json.dumps(config)
    assert config["routePrefix"] == "api"


def test_sigterm_stops_devhost_cleanly(start: Callable[..., Devhost]) -> None:
    host = start()
    assert host.get("/api/open").text == "open"

    host.process.send_signal(signal.SIGTERM)

    assert host.process.wait(timeout=20) == 0
    assert "Stopping devhost..." in host.output()


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie does not)."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc").is_dir():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def test_functions_run_in_a_worker_process_of_the_host(host: Devhost) -> None:
    seen = host.get("/api/process").json()

    assert seen["pid"] != host.process.pid
    assert seen["ppid"] == host.process.pid


def test_ctrl_c_stops_the_host_which_stops_its_worker(start: Callable[..., Devhost]) -> None:
    host = start()
    worker = host.get("/api/process").json()["pid"]

    os.kill(worker, signal.SIGINT)  # Ctrl+C reaches the whole process group: the worker waits
    assert host.get("/api/open").text == "open"
    assert host.stop() == 0  # SIGINT to the host

    assert not alive(worker)


def test_the_worker_process_does_not_outlive_a_killed_host(start: Callable[..., Devhost]) -> None:
    host = start()
    worker = host.get("/api/process").json()["pid"]

    host.process.kill()
    host.process.wait(timeout=20)

    poll(lambda: not alive(worker), what="the worker process to exit")


def test_a_worker_process_that_dies_stops_the_host(start: Callable[..., Devhost]) -> None:
    host = start()

    assert host.post("/api/exit").status_code == 500

    assert host.process.wait(timeout=20) == 1
    assert "the Python worker process exited unexpectedly (exit code 3)" in host.output()
