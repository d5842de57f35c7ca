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

from pytest_hfmodels.cli.arguments import (
    file_path_to_write,
    hub_repo_id,
    positive_int,
    repo_file_path,
)
from pytest_hfmodels.errors import OptionError
from pytest_hfmodels.hub.paths import repo_file_problem

_NOT_FOUND_CLASSES = frozenset({"ModelFileNotFoundError", "ModelNotCachedError"})


def register(subparsers: Any) -> None:
    verify = subparsers.add_parser(
        "verify", help="check that model files exist on the Hub, fetch or convert them"
    )
    verify.add_argument("model", nargs="*", type=hub_repo_id, help="repo id(s), e.g. bert-base-uncased")
    verify.add_argument(
        "--file",
        dest="file_path",
        default="model.onnx",
        type=repo_file_path,
        help="file in the repo, a relative path (default: %(default)s)",
    )
    verify.add_argument(
        "--models", nargs="+", default=[], type=hub_repo_id, metavar="ID", help="more repo ids"
    )
    verify.add_argument("--model-file", type=Path, help="text file of repo ids, one a line, # comments")
    verify.add_argument("--batch", type=Path, help='JSON list of {"model_id", "file_path", "model_type"}')
    verify.add_argument("--output", type=file_path_to_write, help="write the per-model results as JSON here")
    verify.add_argument("--check-exists", action="store_true", help="only check existence, download nothing")
    verify.add_argument("--convert", action="store_true", help="convert when the Hub lacks the file")
    verify.add_argument("--model-type", help="config.json model_type passed to the converter")
    verify.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="where conversions go (default: HFMODELS_CACHE, else ~/.cache/pytest-hfmodels)",
    )
    verify.add_argument(
        "--db",
        type=Path,
        metavar="PATH",
        help="store what was verified and converted (conversion attempts, Hub files) in this database",
    )
    verify.add_argument(
        "--workers", type=positive_int, default=4, help="parallel checks (default: %(default)s)"
    )
    _add_hub_options(verify)
    verify.add_argument("--quiet", action="store_true", help="print failures only")
    verify.set_defaults(func=run_verify)

    metadata = subparsers.add_parser("metadata", help="show a repo's model type, architectures and files")
    metadata.add_argument("model", type=hub_repo_id, help="repo id")
    metadata.add_argument("--json", action="store_true", help="print JSON")
    _add_hub_options(metadata)
    metadata.set_defaults(func=run_metadata)


def _add_hub_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--revision", help="branch, tag or commit (default: main)")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN)")
    parser.add_argument("--offline", action="store_true", default=None, help="use the local HF cache only")


def run_verify(args: argparse.Namespace) -> int:
    from pytest_hfmodels.cache.admin import clean_if_needed
    from pytest_hfmodels.convert.onnx.verify import ModelFileVerifier
    from pytest_hfmodels.db.conversions import record_verifications

    entries = _entries(args)
    if not entries:
        raise OptionError("name models as arguments, --models, --model-file or --batch")
    verifier = ModelFileVerifier(
        cache_dir=args.cache_dir,
        huggingface_token=args.token,
        offline=args.offline,
        revision=args.revision,
        allow_conversion=args.convert,
    )
    results = verifier.batch_verify_models(entries, max_workers=args.workers, check_only=args.check_exists)
    clean_if_needed(verifier.cache_dir)  # as the plugin does at session end
    for result in results:
        _print_result(result, quiet=args.quiet, check_only=args.check_exists)
    if args.db is not None:
        stored = record_verifications(args.db, results)
        if not args.quiet:
            print(f"stored {stored} verification(s) in {args.db}")
    if args.output is not None:
        try:
            args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            print(
                f"hfmodels verify: error: --output {args.output}: cannot write: {exc.strerror}",
                file=sys.stderr,
            )
            return 1
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
    """Every model asked for, in order: arguments, --models, --model-file, then --batch.

    A file that cannot be read, or an entry that is not a repo id with a relative file path, is
    a usage error naming the option and file: it is found before any request goes out.
    """
    ids = [*args.model, *args.models]
    if args.model_file is not None:
        for number, line in enumerate(_read_text(args.model_file, "--model-file").splitlines(), 1):
            model_id = line.split("#", 1)[0].strip()
            if model_id:
                _check_repo_id(model_id, f"--model-file {args.model_file}:{number}")
                ids.append(model_id)
    entries: list[dict[str, Any]] = [
        {"model_id": model_id, "file_path": args.file_path, "model_type": args.model_type} for model_id in ids
    ]
    if args.batch is not None:
        batch = _read_batch(args.batch)
        for number, item in enumerate(batch):
            entry = {"file_path": args.file_path, "model_type": args.model_type, **item}
            where = f"--batch {args.batch}: entry {number}"
            _check_repo_id(entry["model_id"], where)
            file_path = entry["file_path"]
            problem = repo_file_problem(file_path) if isinstance(file_path, str) else "must be a string"
            if problem:
                raise OptionError(f"{where}: file_path: {problem}")
            entries.append(entry)
    return entries


def _read_text(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OptionError(f"{option} {path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise OptionError(f"{option} {path}: not UTF-8 text (byte offset {exc.start})") from None


def _read_batch(path: Path) -> list[dict[str, Any]]:
    try:
        batch = json.loads(_read_text(path, "--batch"))
    except json.JSONDecodeError as exc:
        raise OptionError(
            f"--batch {path}: invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(batch, list) or not all(
        isinstance(item, dict) and "model_id" in item for item in batch
    ):
        raise OptionError(f"--batch {path}: expected a JSON list of objects with 'model_id' and 'file_path'")
    return batch


def _check_repo_id(model_id: Any, where: str) -> None:
    if not isinstance(model_id, str):
        raise OptionError(f"{where}: model_id must be a string, got {model_id!r}")
    try:
        hub_repo_id(model_id)
    except argparse.ArgumentTypeError as exc:
        raise OptionError(f"{where}: {exc}") from None


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
