"""Durable Functions on devhost, over real HTTP, on the session's Azurite: the client binding,
the RPC endpoints the Python client calls and the extension's public webhooks."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from devhost.azurite import Azurite, free_port
from tests.devhost.conftest import (
    APPS,
    Devhost,
    child_env,
    copy_app,
    poll,
    run_devhost_to_exit,
    start_devhost,
)

WEBHOOKS = "/runtime/webhooks/durabletask"


def durable_env(azurite: Azurite, hub: str, **extra: str) -> dict[str, str]:
    return child_env(AzureWebJobsStorage=azurite.connection_string, TEST_TASK_HUB=hub, **extra)


def new_hub() -> str:
    return f"hub{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def hub() -> str:
    return new_hub()


@pytest.fixture(scope="module")
def host(azurite: Azurite, hub: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devhost]:
    directory = tmp_path_factory.mktemp("durable")
    app_dir = copy_app(directory, "durable_app")
    env = durable_env(
        azurite,
        hub,
        AzureFunctionsJobHost__extensions__durableTask__maxConcurrentActivityFunctions="7",
    )
    started = start_devhost(app_dir, directory / "devhost.log", env)
    yield started
    started.stop()


def start(host: Devhost, name: str, payload: Any = None, instance_id: str = "") -> httpx.Response:
    query = f"?instanceId={instance_id}" if instance_id else ""
    response = host.post(f"/api/start/{name}{query}", json=payload)
    assert response.status_code == 202, response.text
    return response


def status(url: str, **params: str) -> httpx.Response:
    # (httpx replaces the URL's own query with `params` when they are given, even empty ones)
    return httpx.get(str(httpx.URL(url).copy_merge_params(params)), timeout=30)


def wait_for(url: str, runtime_status: str, timeout: float = 30) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body: dict[str, Any] = status(url).json()
        return body if body.get("runtimeStatus") == runtime_status else None

    result: dict[str, Any] = poll(check, timeout=timeout, what=f"{runtime_status} at {url}")
    return result


def waiting_approval(host: Devhost) -> dict[str, str]:
    """An `approval` instance, Running and waiting for its event; its management URLs."""
    links: dict[str, str] = start(host, "approval", instance_id=f"a-{uuid.uuid4().hex}").json()
    wait_for(links["statusQueryGetUri"], "Running")
    return links


def test_configuration_from_host_json_settings_and_environment(host: Devhost, hub: str) -> None:
    config = host.get("/admin/devhost/config").json()

    assert config["hubName"] == hub  # "%TEST_TASK_HUB%" in host.json
    assert config["maxConcurrentActivityFunctions"] == 7  # AzureFunctionsJobHost__ override
    assert config["maxConcurrentOrchestratorFunctions"] == 2  # host.json
    output = host.output()
    assert "\thttp_start: [POST] http://localhost:" in output
    assert "\tgreeter: orchestrationTrigger\n" in output
    assert "\tsay_hello: activityTrigger\n" in output


def test_an_activity_gets_the_workers_full_context(host: Devhost) -> None:
    links = start(host, "probe_context").json()

    probe = wait_for(links["statusQueryGetUri"], "Completed")["output"]

    directory = Path(probe["function_directory"])
    assert directory.name.startswith("durable_app-") and (directory / "function_app.py").is_file()
    assert probe["function_name"] == "context_probe"
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]", probe["trace_parent"])
    assert probe["same_invocation"] is True


def test_the_admin_routes_and_the_log_never_show_the_storage_key(
    host: Devhost, azurite: Azurite
) -> None:
    key = azurite.connection_string.split("AccountKey=", 1)[1].split(";", 1)[0]
    start(host, "greeter", ["secret?"])  # something in the instance list and the log

    shown = [
        host.get("/admin/devhost/config").text,
        host.get("/admin/devhost/instances").text,
        host.output(),
    ]

    assert key
    for text in shown:
        assert "AccountKey" not in text
        assert key not in text


def test_the_client_binding_has_the_extension_shape(host: Devhost, hub: str) -> None:
    binding = host.get("/api/binding").json()
    port = host.url.rsplit(":", 1)[1]
    base = f"http://localhost:{port}{WEBHOOKS}"
    code = binding["requiredQueryStringParameters"]

    assert code.startswith("code=") and len(code) > len("code=")
    assert binding["taskHubName"] == hub
    assert binding["baseUrl"] == base
    assert binding["rpcBaseUrl"].startswith("http://127.0.0.1:")
    assert binding["rpcBaseUrl"].endswith("/durabletask/")
    create = f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]"
    assert binding["creationUrls"] == {
        "createNewInstancePostUri": f"{create}?{code}",
        "createAndWaitOnNewInstancePostUri": (
            f"{create}?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{code}"
        ),
    }
    management = binding["managementUrls"]
    assert management["id"] == "INSTANCEID"
    suffix = f"taskHub={hub}&connection=Storage&{code}"
    assert management["statusQueryGetUri"] == f"{base}/instances/INSTANCEID?{suffix}"
    assert management["sendEventPostUri"] == (
        f"{base}/instances/INSTANCEID/raiseEvent/{{eventName}}?{suffix}"
    )
    assert management["terminatePostUri"] == (
        f"{base}/instances/INSTANCEID/terminate?reason={{text}}&{suffix}"
    )
    assert management["suspendPostUri"] == (
        f"{base}/instances/INSTANCEID/suspend?reason={{text}}&{suffix}"
    )


def test_a_client_function_starts_an_orchestration(host: Devhost) -> None:
    response = start(host, "greeter", ["Ada", "Grace"])
    links = response.json()

    assert response.headers["location"] == links["statusQueryGetUri"]
    assert response.headers["retry-after"] == "10"
    assert links["statusQueryGetUri"].startswith(f"{host.url}{WEBHOOKS}/instances/{links['id']}?")
    done = poll(
        lambda: (reply := status(links["statusQueryGetUri"])).status_code == 200 and reply,
        what="the greeter to complete",
    )
    body = done.json()
    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == ["Hello Ada!", "Hello Grace!"]
    assert body["input"] == '["Ada", "Grace"]'  # the Python client encodes its input twice
    assert "historyEvents" not in body


def test_status_with_history_and_without_input(host: Devhost) -> None:
    links = start(host, "greeter", ["Ada"]).json()
    url = links["statusQueryGetUri"]
    wait_for(url, "Completed")

    with_history = status(url, showHistory="true").json()
    with_output = status(url, showHistory="true", showHistoryOutput="true").json()
    without_input = status(url, showInput="false").json()

    kinds = [event["EventType"] for event in with_history["historyEvents"]]
    assert kinds == ["ExecutionStarted", "TaskCompleted", "ExecutionCompleted"]
    completed = with_history["historyEvents"][1]
    assert completed["FunctionName"] == "say_hello"
    assert "Result" not in completed
    assert with_output["historyEvents"][1]["Result"] == "Hello Ada!"
    assert with_output["historyEvents"][2]["Result"] == ["Hello Ada!"]
    assert without_input["input"] is None
    assert without_input["output"] == ["Hello Ada!"]


def test_a_running_instance_answers_202_with_location_and_retry_after(host: Devhost) -> None:
    links = waiting_approval(host)

    running = status(links["statusQueryGetUri"])

    assert running.status_code == 202
    assert running.headers["location"] == links["statusQueryGetUri"]
    assert running.headers["retry-after"] == "5"
    assert running.json()["customStatus"] == "waiting"


def test_an_unknown_instance_is_404(host: Devhost) -> None:
    assert host.get(f"{WEBHOOKS}/instances/no-such-instance").status_code == 404
    assert host.post(f"{WEBHOOKS}/instances/no-such-instance/terminate").status_code == 404
    assert host.request("DELETE", f"{WEBHOOKS}/instances/no-such-instance").status_code == 404


def test_raise_event_webhook_and_client(host: Devhost) -> None:
    by_webhook = waiting_approval(host)
    by_client = waiting_approval(host)
    event_url = by_webhook["sendEventPostUri"].replace("{eventName}", "approval")

    wrong_type = httpx.post(event_url, content=b"{}", headers={"Content-Type": "text/plain"})
    accepted = httpx.post(event_url, json={"ok": True})
    host.post(f"/api/manage/{by_client['id']}/raise", json={"ok": True})

    assert wrong_type.status_code == 400
    assert (accepted.status_code, accepted.content) == (202, b"")
    webhook_done = wait_for(by_webhook["statusQueryGetUri"], "Completed")
    client_done = wait_for(by_client["statusQueryGetUri"], "Completed")
    assert webhook_done["output"] == {"decision": {"ok": True}, "greeting": "Hello approver!"}
    # the Python client's raise_event encodes its payload twice: the orchestrator gets a string
    assert client_done["output"]["decision"] == '{"ok": true}'
    assert httpx.post(event_url, json=1).status_code == 410


def test_terminate_webhook(host: Devhost) -> None:
    links = waiting_approval(host)
    terminate_url = links["terminatePostUri"].replace("{text}", quote("no longer needed"))

    response = httpx.post(terminate_url)

    assert (response.status_code, response.content) == (202, b"")
    done = wait_for(links["statusQueryGetUri"], "Terminated")
    assert done["output"] == "no longer needed"
    assert httpx.post(terminate_url).status_code == 410


def test_suspend_and_resume_webhooks(host: Devhost) -> None:
    links = waiting_approval(host)
    url = links["statusQueryGetUri"]
    suspend = links["suspendPostUri"].replace("{text}", "maintenance")
    resume = links["resumePostUri"].replace("{text}", "done")

    assert httpx.post(suspend).status_code == 202
    suspended = wait_for(url, "Suspended")
    event = httpx.post(links["sendEventPostUri"].replace("{eventName}", "approval"), json="yes")

    def delivered() -> dict[str, Any] | None:
        body: dict[str, Any] = status(url, showHistory="true").json()
        kinds = [item["EventType"] for item in body.get("historyEvents", [])]
        return body if "EventRaised" in kinds else None

    still = poll(delivered, what="the event in the suspended instance's history")
    assert httpx.post(resume).status_code == 202
    done = wait_for(url, "Completed")

    assert suspended["output"] == "maintenance"
    assert event.status_code == 202  # accepted while suspended, acted on after resuming
    assert still["runtimeStatus"] == "Suspended"
    kinds = [item["EventType"] for item in still["historyEvents"]]
    assert kinds.index("ExecutionSuspended") < kinds.index("EventRaised")
    assert "TaskScheduled" not in kinds  # the orchestrator did not run on the event
    assert done["output"]["decision"] == "yes"
    assert httpx.post(suspend).status_code == 410
    assert httpx.post(resume).status_code == 410


def test_suspend_and_resume_through_the_python_client(host: Devhost) -> None:
    links = waiting_approval(host)
    instance_id = links["id"]

    host.post(f"/api/manage/{instance_id}/suspend")
    wait_for(links["statusQueryGetUri"], "Suspended")
    host.post(f"/api/manage/{instance_id}/resume")
    wait_for(links["statusQueryGetUri"], "Running")
    terminated = host.post(f"/api/manage/{instance_id}/terminate")

    assert terminated.status_code == 200
    wait_for(links["statusQueryGetUri"], "Terminated")


def test_purge_webhook_and_client(host: Devhost) -> None:
    first = start(host, "greeter", ["x"]).json()
    second = start(host, "greeter", ["y"]).json()
    wait_for(first["statusQueryGetUri"], "Completed")
    wait_for(second["statusQueryGetUri"], "Completed")

    purged = httpx.delete(first["purgeHistoryDeleteUri"])
    by_client = host.post(f"/api/manage/{second['id']}/purge")

    assert (purged.status_code, purged.json()) == (200, {"instancesDeleted": 1})
    assert by_client.json() == {"deleted": 1}
    assert status(first["statusQueryGetUri"]).status_code == 404
    assert status(second["statusQueryGetUri"]).status_code == 404
    assert httpx.delete(first["purgeHistoryDeleteUri"]).status_code == 404


def test_admin_route_reports_history_episodes_and_cpu(host: Devhost) -> None:
    links = start(host, "greeter", ["a", "b", "c"]).json()
    wait_for(links["statusQueryGetUri"], "Completed")

    one = host.get(f"/admin/devhost/instances/{links['id']}").json()
    everything = host.get("/admin/devhost/instances").json()

    assert one["instanceId"] == links["id"]
    assert one["runtimeStatus"] == "Completed"
    assert one["historyLength"] >= 9  # started, 3 completions, completed + episode markers
    assert one["episodes"] >= 2
    assert one["orchestratorCpuSeconds"] > 0
    assert one["timersCreated"] == 0  # greeter waits on no timer
    load = host.get("/admin/devhost/activities").json()
    assert load == {"running": 0, "runningByName": {}, "queued": 0}  # all done, none left
    assert links["id"] in [info["instanceId"] for info in everything["instances"]]
    totals = everything["totals"]
    assert totals["instances"] == len(everything["instances"])
    assert totals["historyEvents"] >= one["historyLength"]
    assert host.get("/admin/devhost/instances/no-such-instance").status_code == 404
    assert f"{links['id']} (greeter) Completed: history" in host.output()  # the log line


def test_rpc_endpoints_of_the_python_client(host: Devhost) -> None:
    rpc = host.get("/api/binding").json()["rpcBaseUrl"]

    # the input as the Python client sends it: JSON text, in JSON (a raw JSON list would reach
    # the orchestrator as a list, which the SDK's get_input cannot decode)
    waited = httpx.post(
        f"{rpc}orchestrators/greeter?timeout=20&pollingInterval=0.05",
        json=json.dumps(["rpc"]),
        timeout=30,
    )
    unknown = httpx.post(f"{rpc}orchestrators/nope", json=None)
    query = httpx.get(f"{rpc}instances/?runtimeStatus=Completed&instanceIdPrefix=zzz-none")

    assert (waited.status_code, waited.json()) == (200, ["Hello rpc!"])
    assert unknown.status_code == 400
    assert (
        "doesn't exist, is disabled, or is not an orchestrator"
        in unknown.json()["ExceptionMessage"]
    )
    assert (query.status_code, query.json()) == (200, [])


@pytest.fixture
def own_host(azurite: Azurite, tmp_path: Path) -> Iterator[Callable[..., Devhost]]:
    started: list[Devhost] = []

    def run(hub: str, app_dir: Path | None = None, **env: str) -> Devhost:
        app_dir = app_dir or copy_app(tmp_path, "durable_app")
        log = tmp_path / f"{len(started)}.log"
        devhost = start_devhost(app_dir, log, durable_env(azurite, hub, **env))
        started.append(devhost)
        return devhost

    yield run
    for devhost in started:
        devhost.stop()


def test_webhooks_require_the_system_key_when_keys_are_enforced(
    own_host: Callable[..., Devhost],
) -> None:
    host = own_host(new_hub(), DEVHOST_FUNCTION_KEY="fkey")
    links = start(host, "greeter", ["k"]).json()  # an anonymous route
    url = links["statusQueryGetUri"]
    bare = url.split("&code=")[0]

    assert "&code=" in url
    assert wait_for(url, "Completed")["output"] == ["Hello k!"]
    assert status(bare).status_code == 401
    assert status(bare, code="fkey").status_code == 200  # the master key (the function key)
    assert httpx.get(bare, headers={"x-functions-key": "wrong"}).status_code == 401


def test_host_json_functions_leaves_out_orchestrators_too(
    own_host: Callable[..., Devhost], tmp_path: Path
) -> None:
    allowed = ["http_start", "binding", "greeter", "say_hello"]
    host_json = json.loads((APPS / "durable_app" / "host.json").read_text())
    app_dir = copy_app(tmp_path, "durable_app", host_json={**host_json, "functions": allowed})
    host = own_host(new_hub(), app_dir)
    rpc = host.get("/api/binding").json()["rpcBaseUrl"]

    excluded = httpx.post(f"{rpc}orchestrators/approval", json=None)
    by_client = host.post("/api/start/approval")
    links = start(host, "greeter", ["still here"]).json()

    assert excluded.status_code == 400
    assert excluded.json()["ExceptionMessage"] == (
        "The function 'approval' doesn't exist, is disabled, or is not an orchestrator function. "
        "Additional info: The following are the known orchestrator functions: 'greeter'."
    )
    assert by_client.status_code == 500  # the client's start_new raised in http_start
    assert wait_for(links["statusQueryGetUri"], "Completed")["output"] == ["Hello still here!"]
    listing = host.output()
    assert "\tgreeter: orchestrationTrigger\n" in listing
    assert "\tapproval: orchestrationTrigger" not in listing


def test_instances_survive_a_restart(own_host: Callable[..., Devhost], tmp_path: Path) -> None:
    hub = new_hub()
    app_dir = copy_app(tmp_path, "durable_app")
    first = own_host(hub, app_dir)
    instance_id = waiting_approval(first)["id"]
    assert first.stop() == 0

    second = own_host(hub, app_dir)
    path = f"{WEBHOOKS}/instances/{instance_id}"
    running = second.get(path)
    raised = second.post(f"{path}/raiseEvent/approval", json="after restart")
    done = poll(lambda: (reply := second.get(path)).status_code == 200 and reply.json())

    assert (running.status_code, running.json()["runtimeStatus"]) == (202, "Running")
    assert raised.status_code == 202
    assert done["output"]["decision"] == "after restart"


def test_status_query_lists_instances(host: Devhost) -> None:
    prefix = f"list-{uuid.uuid4().hex[:6]}"
    for index in range(3):
        links = start(host, "greeter", [str(index)], instance_id=f"{prefix}-{index}").json()
        wait_for(links["statusQueryGetUri"], "Completed")

    listed = host.get(f"{WEBHOOKS}/instances", params={"instanceIdPrefix": prefix, "top": "2"})
    token = listed.headers["x-ms-continuation-token"]
    rest = host.get(
        f"{WEBHOOKS}/instances",
        params={"instanceIdPrefix": prefix},
        headers={"x-ms-continuation-token": token},
    )

    assert [item["instanceId"] for item in listed.json()] == [f"{prefix}-0", f"{prefix}-1"]
    assert token
    assert [item["instanceId"] for item in rest.json()] == [f"{prefix}-2"]
    assert json.loads(rest.text)[0]["output"] == ["Hello 2!"]


def test_purge_by_filter_on_the_rpc_endpoint(host: Devhost) -> None:
    rpc = host.get("/api/binding").json()["rpcBaseUrl"]
    since = httpx.get(f"{rpc}instances/").json()  # whatever exists before this test
    before = max((item["createdTime"] for item in since), default="2000-01-01T00:00:00Z")
    prefix = f"purge-{uuid.uuid4().hex[:6]}"
    for index in range(2):
        links = start(host, "greeter", [str(index)], instance_id=f"{prefix}-{index}").json()
        wait_for(links["statusQueryGetUri"], "Completed")

    missing = httpx.delete(f"{rpc}instances/")
    nothing = httpx.delete(
        f"{rpc}instances/?createdTimeFrom=2000-01-01T00:00:00Z&createdTimeTo=2000-01-02T00:00:00Z"
    )
    purged = httpx.delete(
        f"{rpc}instances/", params={"createdTimeFrom": before, "runtimeStatus": "Completed"}
    )
    left = httpx.get(f"{rpc}instances/", params={"instanceIdPrefix": prefix})

    assert (missing.status_code, missing.json()) == (
        400,
        "Please provide value for 'createdTimeFrom' parameter.",
    )
    assert nothing.status_code == 404
    assert purged.status_code == 200 and purged.json()["instancesDeleted"] >= 2
    assert left.json() == []


def test_devhost_exits_when_the_durable_storage_is_unreachable(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"BlobEndpoint={nowhere};QueueEndpoint={nowhere};TableEndpoint={nowhere};"
    )

    result = run_devhost_to_exit(
        copy_app(tmp_path, "durable_app"), AzureWebJobsStorage=connection, TEST_TASK_HUB="hub"
    )

    assert result.returncode == 1
    assert "the Durable engine could not start on storage connection 'Storage'" in result.stderr
