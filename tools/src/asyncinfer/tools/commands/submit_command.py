"""`asyncinfer submit PATH... [--wait]`: send drawings to the local stack's queue."""

from __future__ import annotations

import argparse
import json
import shutil
import uuid
from pathlib import Path

from asyncinfer.client.client import AsyncInferClient
from asyncinfer.core.contract import InferenceRequest
from asyncinfer.tools.commands.connect import add_stack_arguments, local_stack_status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, help="image files (PNG, JPEG, ...)")
    parser.add_argument("--model", default="symbols")
    parser.add_argument("--wait", action="store_true", help="wait for and print each result")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--by-uri", action="store_true",
                        help="copy inputs to the stack's blob folder and send file:// URIs (claim check)")
    add_stack_arguments(parser)


def run(args: argparse.Namespace) -> int:
    missing = [str(p) for p in args.paths if not p.is_file()]
    if missing:
        print(f"not a file: {', '.join(missing)}")
        return 2
    try:
        status = local_stack_status(args)
    except FileNotFoundError as exc:
        print(exc)
        return 1
    with AsyncInferClient.from_status(status) as client:
        ids = []
        for path in args.paths:
            request_id = f"{path.stem}-{uuid.uuid4().hex[:8]}"
            if args.by_uri:
                target = Path(status["blob_root"]) / f"{request_id}{path.suffix}"
                shutil.copyfile(path, target)
                request = InferenceRequest.by_uri(request_id, args.model, f"file://{target}")
            else:
                request = InferenceRequest.inline(request_id, args.model, path.read_bytes())
            client.submit(request).result(timeout=30)
            ids.append(request_id)
            print(f"submitted {path} as {request_id}")
        if not args.wait:
            return 0
        answers = client.wait(ids, timeout_s=args.timeout)
        for request_id in ids:
            answer = answers.get(request_id)
            if answer is None:
                print(json.dumps({"request_id": request_id, "status": "no answer yet"}))
            elif answer.result is None:
                print(json.dumps({"request_id": request_id, "status": "dead_lettered"}))
            else:
                print(answer.result.model_dump_json(exclude_none=True))
        return 0 if len(answers) == len(ids) else 1
