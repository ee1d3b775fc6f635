"""The administrator's page: the console's users (adding one is `accord console user add`,
where the password is typed at a prompt, never into a web form of this alpha)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from accord.console.auth import AdminUser
from accord.console.users import ADMIN
from accord.console.web import NavItem, render

router = APIRouter()
NAV = [NavItem("Users", "/admin/users", (ADMIN,))]


@router.get("/admin/users")
def users_page(request: Request, user: AdminUser) -> Response:
    return render(request, "admin/users.html", {"users": request.app.state.users.users()})
