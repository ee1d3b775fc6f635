"""`python -m accord.registry --port N`: the schema registry process `accord stack up` starts."""

from __future__ import annotations

import argparse

from accord.core.credentials import REGISTRY
from accord.core.kafka import as_principal
from accord.core.logging import configure_logging
from accord.core.settings import get_settings
from accord.registry.app import serve


def main() -> None:
    settings = as_principal(get_settings(), REGISTRY)
    parser = argparse.ArgumentParser(prog="accord.registry")
    parser.add_argument(
        "--host", default="127.0.0.1", help="Listen address (0.0.0.0 in containers)."
    )
    parser.add_argument("--port", type=int, default=settings.registry_port)
    args = parser.parse_args()
    configure_logging(settings.log_format, settings.log_level)
    serve(settings, args.host, args.port)


if __name__ == "__main__":
    main()
