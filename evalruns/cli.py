"""`evalruns`: the command-line client of the evalruns HTTP API."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from evalruns.client import DEFAULT_URL, ApiError, EvalrunsClient
from evalruns.domain.runs import TERMINAL
from evalruns.progress import RateMeter, render

POLL_SECONDS = 1.0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with EvalrunsClient(args.url, args.key) as client:
        try:
            command: Callable[[EvalrunsClient, argparse.Namespace], int] = args.command
            return command(client, args)
        except ApiError as error:
            print(f"error: {error}", file=sys.stderr)
            for field_error in error.problem.get("errors", []):
                where = ".".join(str(part) for part in field_error.get("loc", []))
                print(f"  {where}: {field_error.get('msg')}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130


def cmd_models(client: EvalrunsClient, args: argparse.Namespace) -> int:
    for model in client.models(available_only=not args.all):
        mark = "" if model["isAvailable"] else "  (no credentials)"
        print(f"{model['id']:<28} {model['provider']:<10} {model['defaultVersion']}{mark}")
    return 0


def cmd_define(client: EvalrunsClient, args: argparse.Namespace) -> int:
    created = client.create_definition(json.loads(Path(args.file).read_text()))
    print(f"definition {created['id']}: {created['name']} ({created['scenarioCount']} scenarios)")
    return 0


def cmd_start(client: EvalrunsClient, args: argparse.Namespace) -> int:
    definition_id = args.definition
    if args.file:
        definition_id = client.create_definition(json.loads(Path(args.file).read_text()))["id"]
    if not definition_id:
        print("error: give --definition ID or --file DEFINITION.json", file=sys.stderr)
        return 2
    body = {
        "definitionId": definition_id,
        "models": args.models,
        "samplePercentage": args.sample_percentage,
        "samplesPerScenario": args.samples,
        "sampleSeed": args.seed,
        "name": args.name,
    }
    started = client.start_run(**{key: value for key, value in body.items() if value is not None})
    run = started["run"]
    print(f"run {run['id']} started: {run['progress']['total']} jobs")
    return cmd_watch(client, argparse.Namespace(run_id=run["id"])) if args.watch else 0


def cmd_watch(client: EvalrunsClient, args: argparse.Namespace) -> int:
    """Redraw the bar in place on a terminal; print a line every few seconds otherwise."""
    meter = RateMeter()
    interactive = sys.stdout.isatty()
    last_line = ""
    last_print = 0.0
    while True:
        run = client.run(args.run_id)
        progress = run["progress"]
        line = render(
            run["status"], progress, meter.rate(progress["completed"] + progress["failed"])
        )
        now = time.monotonic()
        if interactive:
            print(f"\r{line}", end="", flush=True)
        elif line != last_line and (now - last_print >= 5 or run["status"] in TERMINAL):
            print(line, flush=True)
            last_print = now
        last_line = line
        if run["status"] in TERMINAL:
            if interactive:
                print()
            if run.get("error"):
                print(f"error: {run['error']}")
            return 0 if run["status"] == "COMPLETED" else 1
        time.sleep(POLL_SECONDS)


def cmd_list(client: EvalrunsClient, args: argparse.Namespace) -> int:
    runs = client.runs(status=args.status and args.status.upper(), definitionId=args.definition)
    for run in islice(runs, args.limit):
        progress = run["progress"]
        print(
            f"{run['id']}  {run['status']:<11} {progress['completed'] + progress['failed']:>6}/"
            f"{progress['total']:<6} {run['createdAt']}  {run['name']}"
        )
    return 0


def cmd_show(client: EvalrunsClient, args: argparse.Namespace) -> int:
    print(json.dumps(client.run(args.run_id), indent=2))
    return 0


def cmd_transcripts(client: EvalrunsClient, args: argparse.Namespace) -> int:
    if args.transcript_id:
        print(json.dumps(client.transcript(args.run_id, args.transcript_id), indent=2))
        return 0
    items = client.transcripts(
        args.run_id, modelId=args.model, status=args.status and args.status.upper()
    )
    for item in islice(items, args.limit):
        print(
            f"{item['id']:<36} {item['status']:<9} decision={item['decisionCode']:<6} "
            f"tokens={item['inputTokens']}/{item['outputTokens']}  {item['scenarioName']}"
        )
    return 0


def cmd_export(client: EvalrunsClient, args: argparse.Namespace) -> int:
    link = client.export(args.run_id)
    target = Path(args.output or link["filename"])
    size = client.download(link["url"], target)
    print(f"{link['rows']} rows, {size} bytes -> {target}")
    print(f"download link (valid until {link['expiresAt']}):\n{link['url']}")
    return 0


def cmd_control(client: EvalrunsClient, args: argparse.Namespace) -> int:
    run = client.control(args.run_id, args.action)
    print(f"run {run['id']}: {run['status']}")
    return 0


def cmd_rerun(client: EvalrunsClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"onlyFailed": args.only_failed}
    if args.models:
        body["models"] = args.models
    run = client.control(args.run_id, "rerun", body)["run"]
    print(f"run {run['id']} started: re-run of {args.run_id}, {run['progress']['total']} jobs")
    return cmd_watch(client, argparse.Namespace(run_id=run["id"])) if args.watch else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evalruns", description=__doc__)
    parser.add_argument("--url", default=os.environ.get("EVALRUNS_URL", DEFAULT_URL))
    parser.add_argument(
        "--key",
        default=os.environ.get("EVALRUNS_FUNCTION_KEY"),
        help="function key (default: $EVALRUNS_FUNCTION_KEY)",
    )
    commands = parser.add_subparsers(required=True, metavar="command")

    models = commands.add_parser("models", help="list models")
    models.add_argument("--all", action="store_true", help="include models without credentials")
    models.set_defaults(command=cmd_models)

    define = commands.add_parser("define", help="create a definition from a JSON file")
    define.add_argument("file")
    define.set_defaults(command=cmd_define)

    start = commands.add_parser("start", help="start a run")
    start.add_argument("--definition", help="definition id")
    start.add_argument("--file", help="create the definition from this JSON file first")
    start.add_argument("--models", nargs="+", required=True)
    start.add_argument("--sample-percentage", type=float)
    start.add_argument("--samples", type=int, help="samples per scenario")
    start.add_argument("--seed", type=int)
    start.add_argument("--name")
    start.add_argument("--watch", action="store_true", help="show progress until it ends")
    start.set_defaults(command=cmd_start)

    for name, handler, text in (
        ("watch", cmd_watch, "show a run's progress until it ends"),
        ("show", cmd_show, "print a run"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("run_id")
        sub.set_defaults(command=handler)

    for name, text in (
        ("pause", "pause a run: no new provider call starts, calls in flight finish"),
        ("resume", "resume a paused run"),
        ("cancel", "cancel a run; transcripts already written are kept"),
    ):
        control = commands.add_parser(name, help=text)
        control.add_argument("run_id")
        control.set_defaults(command=cmd_control, action=name)

    rerun = commands.add_parser("rerun", help="run a run again (same scenarios and settings)")
    rerun.add_argument("run_id")
    rerun.add_argument("--models", nargs="+", help="other models or versions")
    rerun.add_argument(
        "--only-failed",
        action="store_true",
        help="run only the failed jobs; carry the successful ones over",
    )
    rerun.add_argument("--watch", action="store_true")
    rerun.set_defaults(command=cmd_rerun)

    listing = commands.add_parser("list", help="list runs, newest first")
    listing.add_argument("--status")
    listing.add_argument("--definition")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(command=cmd_list)

    transcripts = commands.add_parser("transcripts", help="list a run's transcripts, or show one")
    transcripts.add_argument("run_id")
    transcripts.add_argument("transcript_id", nargs="?")
    transcripts.add_argument("--model")
    transcripts.add_argument("--status")
    transcripts.add_argument("--limit", type=int, default=50)
    transcripts.set_defaults(command=cmd_transcripts)

    export = commands.add_parser("export", help="export a run as CSV and download it")
    export.add_argument("run_id")
    export.add_argument("-o", "--output", help="file to write (default: the export's name)")
    export.set_defaults(command=cmd_export)
    return parser


if __name__ == "__main__":
    sys.exit(main())
