"""Running the console: its live lists, the application and uvicorn, over HTTPS.

The console signs in to Kafka as each recipient whose coordinator opens a list (that
recipient's own principal, from the credentials the stack saved), so it reads exactly
what the recipient's own systems could, and as the hub's console principal for the audit
topic and OPA. It serves HTTPS with the stack's certificate unless ACCORD_CONSOLE_TLS is
false (then only for a TLS-terminating proxy on the same host).
"""

from __future__ import annotations

import uvicorn

from accord.console.app import create_app
from accord.core import metrics
from accord.core.credentials import CONSOLE
from accord.core.kafka import as_principal
from accord.core.logging import get_logger
from accord.core.settings import Settings
from accord.stack.tls import ensure_tls

log = get_logger("accord.console")


def run_console(settings: Settings) -> None:
    """Serve until SIGTERM or Ctrl-C."""
    from accord.console.lists import ShareLists

    hub = as_principal(settings, CONSOLE)
    health = metrics.Health("console", metrics.standard_checks(settings, CONSOLE))
    metrics.serve(health, settings.metrics_host, settings.console_metrics_port)
    lists = ShareLists(settings)
    app = create_app(settings, lists=lists, hub=hub)
    tls: dict[str, str] = {}
    if settings.console_tls:
        files = ensure_tls(settings)
        tls = {"ssl_certfile": str(files.server_cert), "ssl_keyfile": str(files.server_key)}
    scheme = "https" if tls else "http"
    log.info(
        "console_started",
        address=f"{scheme}://{settings.console_host}:{settings.console_port}",
    )
    try:
        uvicorn.run(
            app,
            host=settings.console_host,
            port=settings.console_port,
            log_level="warning",
            access_log=False,  # request lines could carry a query string; see the access log
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=3,
            **tls,
        )
    finally:
        lists.close()
