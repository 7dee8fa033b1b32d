"""A small HTTP-only fixture app for the devhost tests (not evalruns)."""

import json
import os

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _describe(req: func.HttpRequest) -> dict:
    return {
        "method": req.method,
        "url": req.url,
        "route_params": dict(req.route_params),
        "params": dict(req.params),
        "headers": {key: req.headers[key] for key in req.headers},
        "body": req.get_body().decode("utf-8", "replace"),
    }


@app.route(route="echo/{id:int}", methods=["GET", "POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(_describe(req)), mimetype="application/json")


@app.route(route="items/{category:alpha}/{page?}", methods=["GET"])
def items(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(dict(req.route_params)), mimetype="application/json")


@app.route(route="items/new", methods=["GET"])
def items_new(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("the literal route")


@app.route(route="files/{name}.{ext?}", methods=["GET"])
def files(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(dict(req.route_params)), mimetype="application/json")


@app.route(route="rest/{*path}")
def catch_all(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(_describe(req)), mimetype="application/json")


@app.route(route="respond/{code:int:range(200,599)}", methods=["GET"])
def respond(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        "héllo",
        status_code=int(req.route_params["code"]),
        headers={"X-Custom": "yes", "Set-Cookie": "session=abc; Path=/app; HttpOnly"},
        mimetype="text/html",
        charset="utf-8",
    )


@app.route(route="binary", methods=["GET"])
def binary(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(bytes(range(256)), mimetype="application/octet-stream")


@app.route(route="plain", methods=["GET"])
def plain(req: func.HttpRequest) -> str:
    return "just a string"


@app.route(route="boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("the function failed")


@app.route(route="nothing", methods=["GET"])
def nothing(req: func.HttpRequest) -> func.HttpResponse:
    return None  # type: ignore[return-value]


@app.route(route="settings/{name}", methods=["GET"])
def settings(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params["name"]
    return func.HttpResponse(json.dumps({name: os.environ.get(name)}), mimetype="application/json")


@app.route(route="context", methods=["GET"])
async def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    payload = {
        "function_name": context.function_name,
        "invocation_id": context.invocation_id,
        "cwd": os.getcwd(),
    }
    return func.HttpResponse(json.dumps(payload), mimetype="application/json")


@app.route(route="open", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def open_route(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("open")


@app.route(route="secured", methods=["GET"])
def secured(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("secured")


@app.route(route="keys/admin", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def admin_level(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin")


@app.route(route="out", methods=["GET"], binding_arg_name="res")
def out_binding(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
    res.set(func.HttpResponse("via the out binding", status_code=202))


@app.route(route="process", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def process(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"pid": os.getpid(), "ppid": os.getppid()}))


@app.route(route="exit", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def exit_process(req: func.HttpRequest) -> func.HttpResponse:
    os._exit(3)  # the worker process dies mid-invocation
