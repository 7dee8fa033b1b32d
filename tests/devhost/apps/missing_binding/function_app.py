"""Fixture: a parameter without a binding (the worker refuses to index this app)."""

import azure.functions as func

app = func.FunctionApp()


@app.route(route="fine")
def fine(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("fine")


@app.route(route="broken")
def broken(req: func.HttpRequest, extra: str) -> func.HttpResponse:
    return func.HttpResponse(extra)
