"""Rendering pages: one Jinja2 environment, the context every page gets, and error pages.

Every page template extends `base.html` and is rendered with `render(request, name, ...)`,
which adds:

- `user`: the signed-in `User` (or None on the sign-in page),
- `nav`: the service navigation items this user's role may see (`NavItem`s registered by
  each router module, see `accord.console.app`), with `current` set on the one whose
  prefix matches the path,
- `csrf_field()`: a template global writing the hidden CSRF input for a form, and
  `csrf_token` for JavaScript callers (the X-CSRF-Token header).

Autoescaping is on for every template: every value shown comes from other organisations'
systems and is escaped, never marked safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup, escape

from accord.console.auth import CSRF_FIELD, session_of

TEMPLATES_DIR: Final = Path(__file__).parent / "templates"
SERVICE_NAME: Final = "Accord"


@dataclass(frozen=True)
class NavItem:
    """One link of the service navigation, shown to the roles named."""

    label: str
    href: str
    roles: tuple[str, ...]
    prefix: str | None = None  # paths under this mark the item current [default: href]


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))

# The pages' Content-Security-Policy (ConsoleMiddleware adds it where a response has none).
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)


@pass_context
def csrf_field(context: dict[str, Any]) -> Markup:
    request: Request = context["request"]
    session = session_of(request)
    token = session.csrf if session else ""
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">')


templates.env.globals["csrf_field"] = csrf_field
templates.env.globals["service_name"] = SERVICE_NAME


def nav_for(request: Request, role: str | None) -> list[dict[str, Any]]:
    items: list[NavItem] = getattr(request.app.state, "nav", [])
    path = request.url.path
    shown = []
    for item in items:
        if role in item.roles:
            prefix = item.prefix or item.href
            shown.append(
                {"label": item.label, "href": item.href, "current": path.startswith(prefix)}
            )
    return shown


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render template `name` with the page context every console page gets."""
    session = session_of(request)
    user = session.user if session else None
    page = {
        "user": user,
        "nav": nav_for(request, user.role if user else None),
        "csrf_token": session.csrf if session else "",
    }
    page.update(context or {})
    return templates.TemplateResponse(request, name, page, status_code=status_code, headers=headers)


def error_page(
    request: Request,
    status_code: int,
    title: str,
    message: str,
    what_to_do: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A plain-English error page with the right status code."""
    return render(
        request,
        "error.html",
        {"title": title, "message": message, "what_to_do": what_to_do, "status": status_code},
        status_code=status_code,
        headers=headers,
    )


class PageError(Exception):
    """Raise from a route to answer with a plain-English error page (`error_page`)."""

    def __init__(
        self, status_code: int, title: str, message: str, what_to_do: str | None = None
    ) -> None:
        super().__init__(title)
        self.status_code, self.title, self.message = status_code, title, message
        self.what_to_do = what_to_do
