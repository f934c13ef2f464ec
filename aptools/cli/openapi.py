"""``aptools openapi``: print a provider's OpenAPI document."""

from __future__ import annotations

import argparse
import json
from typing import Any

from aptools.cli.common import read_provider

__all__ = ["add_parser", "openapi"]

HELP = "print the provider's OpenAPI 3.1 document"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("openapi", help=HELP, description=HELP + ".")
    parser.add_argument("target", help="MODULE or MODULE:ATTR naming the Provider")
    parser.set_defaults(func=openapi)


def openapi(args: argparse.Namespace) -> int:
    """Print the provider's OpenAPI document (no store or client needed)."""
    provider = read_provider(args.target)
    print(json.dumps(provider.openapi(), indent=2))
    return 0
