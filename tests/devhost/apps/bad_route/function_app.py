"""Fixture: routes the host refuses (reserved prefix, invalid binding name)."""

import azure.functions as func

app = func.FunctionApp()


@app.route(route="admin/tools")
def tools(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("tools")


@app.route(route="snake", trigger_arg_name="my_request")
def snake(my_request: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("snake")
