"""`hfmodels verify` and `hfmodels metadata`: check, fetch or convert model files of Hub repos.

Exit codes: 0 when every file was found (or converted), 1 when one is missing or failed, 2 on a usage
error. The token comes from ``--token`` or HF_TOKEN and is never printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

USAGE_ERROR = 2
_NOT_FOUND_CLASSES = frozenset({"ModelFileNotFoundError", "ModelNotCachedError"})


def register(subparsers: Any) -> None:
    verify = subparsers.add_parser(
        "verify", help="check that model files exist on the Hub, fetch or convert them"
    )
    verify.add_argument("model", nargs="*", help="repo id(s), e.g. bert-base-uncased")
    verify.add_argument(
        "--file", dest="file_path", default="model.onnx", help="file in the repo (default: %(default)s)"
    )
    verify.add_argument("--models", nargs="+", default=[], metavar="ID", help="more repo ids")
    verify.add_argument("--model-file", type=Path, help="text file of repo ids, one a line, # comments")
    verify.add_argument("--batch", type=Path, help='JSON list of {"model_id", "file_path", "model_type"}')
    verify.add_argument("--output", type=Path, help="write the per-model results as JSON here")
    verify.add_argument("--check-exists", action="store_true", help="only check existence, download nothing")
    verify.add_argument("--convert", action="store_true", help="convert when the Hub lacks the file")
    verify.add_argument("--model-type", help="model type passed to the converter")
    verify.add_argument(
        "--workers", type=_positive_int, default=4, help="parallel checks (default: %(default)s)"
    )
    _add_hub_options(verify)
    verify.add_argument("--quiet", action="store_true", help="print failures only")
    verify.set_defaults(func=run_verify)

    metadata = subparsers.add_parser("metadata", help="show a repo's model type, architectures and files")
    metadata.add_argument("model", help="repo id")
    metadata.add_argument("--json", action="store_true", help="print JSON")
    _add_hub_options(metadata)
    metadata.set_defaults(func=run_metadata)


def _add_hub_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--revision", help="branch, tag or commit (default: main)")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN)")
    parser.add_argument("--offline", action="store_true", default=None, help="use the local HF cache only")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def run_verify(args: argparse.Namespace) -> int:
    from pytest_hfmodels.convert.onnx.verify import ModelFileVerifier

    try:
        entries = _entries(args)
    except (OSError, ValueError) as error:
        print(f"hfmodels verify: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    if not entries:
        print(
            "hfmodels verify: error: name models as arguments, --models, --model-file or --batch",
            file=sys.stderr,
        )
        return USAGE_ERROR
    verifier = ModelFileVerifier(
        token=args.token, offline=args.offline, revision=args.revision, allow_conversion=args.convert
    )
    results = verifier.batch_verify_models(entries, max_workers=args.workers, check_only=args.check_exists)
    for result in results:
        _print_result(result, quiet=args.quiet, check_only=args.check_exists)
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    failed = sum(1 for result in results if not result["success"])
    if not args.quiet:
        print(f"{len(results) - failed}/{len(results)} verified")
    return 1 if failed else 0


def run_metadata(args: argparse.Namespace) -> int:
    from pytest_hfmodels.hub.client import HubClient

    metadata = HubClient(token=args.token, offline=args.offline).model_metadata(args.model, args.revision)
    if args.json:
        print(json.dumps(metadata.as_dict(), indent=2))
        return 0
    print(f"repo_id:       {metadata.repo_id}")
    print(f"sha:           {metadata.sha}{'  (from cache)' if metadata.from_cache else ''}")
    print(f"model_type:    {metadata.model_type}")
    print(f"architectures: {', '.join(metadata.architectures) or '-'}")
    print(f"has_onnx:      {str(metadata.has_onnx).lower()}")
    print(f"files ({len(metadata.files)}):")
    for name in metadata.files:
        print(f"  {name}")
    return 0


def _entries(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every model asked for, in order: arguments, --models, --model-file, then --batch."""
    ids = [*args.model, *args.models]
    if args.model_file is not None:
        for line in args.model_file.read_text(encoding="utf-8").splitlines():
            model_id = line.split("#", 1)[0].strip()
            if model_id:
                ids.append(model_id)
    entries: list[dict[str, Any]] = [
        {"model_id": model_id, "file_path": args.file_path, "model_type": args.model_type} for model_id in ids
    ]
    if args.batch is not None:
        batch = json.loads(args.batch.read_text(encoding="utf-8"))
        if not isinstance(batch, list) or not all(
            isinstance(item, dict) and "model_id" in item for item in batch
        ):
            raise ValueError(f"{args.batch}: expected a JSON list of objects with 'model_id' and 'file_path'")
        for item in batch:
            entries.append({"file_path": args.file_path, "model_type": args.model_type, **item})
    return entries


def _print_result(result: dict[str, Any], *, quiet: bool, check_only: bool) -> None:
    name = f"{result['model_id']} {result['file_path']}"
    if not result["success"]:
        label = "MISSING" if result["error_class"] in _NOT_FOUND_CLASSES else "FAILED"
        print(f"{label:<10} {name}: {result['error']}")
        return
    if quiet:
        return
    if check_only:
        print(f"EXISTS     {name}")
    elif result["was_converted"]:
        print(f"CONVERTED  {name} -> {result['local_path']}")
    else:
        print(f"FOUND      {name} -> {result['local_path']}")
