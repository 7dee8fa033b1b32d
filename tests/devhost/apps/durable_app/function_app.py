"""A small Durable fixture app for the devhost tests (not evalruns)."""

import json

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    body = req.get_body()
    payload = json.loads(body) if body else None
    instance_id = await client.start_new(
        req.route_params["name"], req.params.get("instanceId"), payload
    )
    return client.create_check_status_response(req, instance_id)


@app.route(route="manage/{instanceId}/{action}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def manage(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = req.route_params["instanceId"]
    action = req.route_params["action"]
    if action == "suspend":
        await client.suspend(instance_id, "paused by test")
    elif action == "resume":
        await client.resume(instance_id, "resumed by test")
    elif action == "terminate":
        await client.terminate(instance_id, "stopped by test")
    elif action == "raise":
        await client.raise_event(instance_id, "approval", json.loads(req.get_body()))
    elif action == "purge":
        result = await client.purge_instance_history(instance_id)
        return func.HttpResponse(json.dumps({"deleted": result.instances_deleted}))
    status = await client.get_status(instance_id)
    return func.HttpResponse(json.dumps({"runtimeStatus": status.runtime_status.value}))


@app.route(route="binding", methods=["GET"])
@app.generic_input_binding(arg_name="starter", type="durableClient")
def binding(req: func.HttpRequest, starter: str) -> func.HttpResponse:
    """The raw durableClient binding data, as the host hands it to the worker."""
    return func.HttpResponse(starter, mimetype="application/json")


@app.orchestration_trigger(context_name="context")
def greeter(context: df.DurableOrchestrationContext):
    names = context.get_input() or []
    greetings = []
    for name in names:
        greetings.append((yield context.call_activity("say_hello", name)))
    return greetings


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    context.set_custom_status("waiting")
    decision = yield context.wait_for_external_event("approval")
    greeting = yield context.call_activity("say_hello", "approver")
    return {"decision": decision, "greeting": greeting}


@app.activity_trigger(input_name="name")
def say_hello(name: str) -> str:
    return f"Hello {name}!"


@app.orchestration_trigger(context_name="context")
def probe_context(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("context_probe", None))


@app.activity_trigger(input_name="value")
def context_probe(value: str, context: func.Context) -> dict:
    """What the worker's func.Context tells an activity (the one HTTP functions get)."""
    return {
        "function_name": context.function_name,
        "function_directory": context.function_directory,
        "trace_parent": context.trace_context.trace_parent,
        "same_invocation": context.thread_local_storage.invocation_id == context.invocation_id,
    }
