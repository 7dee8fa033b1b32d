"""A timer fixture app for the devhost tests (not evalruns).

Each run appends one JSON line to ``{TIMER_RECORDS}/{function}.jsonl`` with what the function
saw of its ``TimerRequest``.
"""

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def record(name: str, timer: func.TimerRequest, **fields: Any) -> None:
    seen = {
        "past_due": timer.past_due,
        "status": timer.schedule_status,
        "schedule": timer.schedule,
    }
    line = json.dumps({**seen, **fields})
    with (Path(os.environ["TIMER_RECORDS"]) / f"{name}.jsonl").open("a") as records:
        records.write(line + "\n")


@app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer")
def tick(timer: func.TimerRequest) -> None:
    """Every second (the schedule comes from an app setting)."""
    record("tick", timer, at=time.time())


@app.timer_trigger(schedule="* * * * * *", arg_name="timer")
async def slow(timer: func.TimerRequest) -> None:
    """Due every second, but each run takes longer than that."""
    started = time.time()
    await asyncio.sleep(1.2)
    record("slow", timer, start=started, end=time.time())


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer")
@app.durable_client_input(client_name="client")
async def on_demand(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Yearly (monitored): the tests run it through the admin API; it starts an orchestration."""
    instance_id = await client.start_new("greet", None, "timer")
    record("on_demand", timer, instance_id=instance_id)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True, use_monitor=False)
def startup(timer: func.TimerRequest) -> None:
    record("startup", timer)


@app.timer_trigger(schedule="0 0 * * * *", arg_name="timer")
def hourly(timer: func.TimerRequest) -> None:
    """Hourly (monitored): the tests record a missed occurrence before devhost starts."""
    record("hourly", timer)


@app.orchestration_trigger(context_name="context")
def greet(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("say_hello", context.get_input()))


@app.activity_trigger(input_name="name")
def say_hello(name: str) -> str:
    return f"hello {name}"
