"""`hfmodels registry`: list and validate the model registries."""

from __future__ import annotations

import argparse
from typing import Any

from pytest_hfmodels.cli.arguments import existing_folder
from pytest_hfmodels.registry.loader import load_registries
from pytest_hfmodels.registry.select import as_table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("registry", help="list or validate the model registries")
    parser.add_argument("action", choices=("ls", "validate"), nargs="?", default="ls")
    parser.add_argument(
        "--registry",
        action="append",
        default=[],
        type=existing_folder,
        metavar="DIR",
        help="extra registry folder",
    )
    parser.add_argument("--set", dest="model_set", default="all", choices=("small", "key", "all"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    registry = load_registries(args.registry)
    if args.action == "validate":
        print(f"{len(registry.files)} files, {len(registry.entries)} models: valid")
        return 0
    print(as_table(registry.select(model_set=args.model_set)))
    return 0
