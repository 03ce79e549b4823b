"""`/admin/*`: act on players and review the anti-cheat verdicts and the audit trail.
Every route needs an access token of an admin (403 `INSUFFICIENT_PERMISSIONS` for
anyone else, 401 without a token)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scoreboard.api import common
from scoreboard.api.common import (
    address,
    parse_user_id,
    path_user_id,
    query_instant,
    query_int,
    require_access,
    services,
)
from scoreboard.auth import audit as audit_events
from scoreboard.auth.devices import parse_handle
from scoreboard.boards.moderation import Meta, clean_reason, parse_cursor, parse_delta
from scoreboard.core.contract import (
    Adjustment,
    AuditPage,
    DeviceList,
    MaybeReason,
    WithReason,
)
from scoreboard.core.errors import InvalidRequest
from scoreboard.http.bodies import read_body
from scoreboard.http.responses import ok

MAX_PAGE = 200
_EVENT_TYPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_")


async def admin_meta(request: Request) -> Meta:
    """The calling admin (401 without a token, 403 for anyone else)."""
    claims = await require_access(request)
    await services(request).admin.require_admin(claims)
    return Meta(claims.user_id, address(request), request.headers.get("user-agent", ""))


def _page(page: AuditPage) -> Response:
    return ok(page)


def _limit(request: Request) -> int:
    return query_int(request, "limit", 50, 1, MAX_PAGE)


async def ban(request: Request) -> Response:
    meta = await admin_meta(request)
    body = await read_body(request, WithReason)
    result = await services(request).admin.ban(
        path_user_id(request), clean_reason(body.reason), meta
    )
    return ok(result)


async def unban(request: Request) -> Response:
    meta = await admin_meta(request)
    has_body = request.headers.get("content-length", "0") != "0"
    reason = clean_reason((await read_body(request, MaybeReason)).reason) if has_body else ""
    return ok(await services(request).admin.unban(path_user_id(request), reason, meta))


async def adjust(request: Request) -> Response:
    meta = await admin_meta(request)
    svc = services(request)
    body = await read_body(request, Adjustment)
    delta = parse_delta(body.delta, svc.settings.score_ceiling)
    reason = clean_reason(body.reason)
    return ok(await svc.admin.adjust(path_user_id(request), delta, reason, meta))


async def remove_score(request: Request) -> Response:
    meta = await admin_meta(request)
    body = await read_body(request, WithReason)
    admin = services(request).admin
    return ok(await admin.adjust(path_user_id(request), None, clean_reason(body.reason), meta))


async def flagged(request: Request) -> Response:
    await admin_meta(request)
    cursor = parse_cursor(request.query_params.get("cursor"))
    return _page(await services(request).admin.flagged(_limit(request), cursor))


async def history(request: Request) -> Response:
    await admin_meta(request)
    cursor = parse_cursor(request.query_params.get("cursor"))
    admin = services(request).admin
    return _page(await admin.history(path_user_id(request), _limit(request), cursor))


async def audit(request: Request) -> Response:
    await admin_meta(request)
    event_type = request.query_params.get("event_type")
    if event_type is not None and (
        not 1 <= len(event_type) <= 50 or not set(event_type) <= _EVENT_TYPE_CHARS
    ):
        raise InvalidRequest(
            "event_type must be lower-case letters and underscores",
            details={"field": "event_type"},
        )
    raw_user = request.query_params.get("user_id")
    user_id = None if raw_user is None else parse_user_id(raw_user)
    since, until = query_instant(request, "since"), query_instant(request, "until")
    cursor = parse_cursor(request.query_params.get("cursor"))
    admin = services(request).admin
    page = await admin.audit_records(event_type, user_id, _limit(request), cursor, since, until)
    return _page(page)


async def player_devices(request: Request) -> Response:
    """The devices a player signed in from, latest first."""
    await admin_meta(request)
    user_id = path_user_id(request)
    return ok(DeviceList(devices=await services(request).devices.of_player(user_id)))


async def flagged_devices(request: Request) -> Response:
    """Devices that reached the farm threshold, latest first."""
    await admin_meta(request)
    return ok(DeviceList(devices=await services(request).devices.flagged()))


async def device(request: Request) -> Response:
    await admin_meta(request)
    handle = parse_handle(request.path_params["device_id"])
    return ok(await services(request).devices.one(handle))


async def block_device(request: Request) -> Response:
    """No login from the device from now on; its open sessions are revoked."""
    meta = await admin_meta(request)
    body = await read_body(request, WithReason)
    handle = parse_handle(request.path_params["device_id"])
    reason = clean_reason(body.reason)
    devices = services(request).devices
    revoked = await devices.block(handle, meta.admin_id, reason)
    details = {**meta.actor(), "device_id": handle, "reason": reason, "sessions_revoked": revoked}
    await common.audit(request, audit_events.DEVICE_BLOCKED, result="blocked", details=details)
    return ok(await devices.one(handle))


async def unblock_device(request: Request) -> Response:
    meta = await admin_meta(request)
    has_body = request.headers.get("content-length", "0") != "0"
    reason = clean_reason((await read_body(request, MaybeReason)).reason) if has_body else ""
    handle = parse_handle(request.path_params["device_id"])
    devices = services(request).devices
    await devices.unblock(handle)
    details = {**meta.actor(), "device_id": handle, "reason": reason}
    await common.audit(request, audit_events.DEVICE_UNBLOCKED, result="unblocked", details=details)
    return ok(await devices.one(handle))


routes = [
    Route("/admin/players/{user_id}/ban", ban, methods=["POST"]),
    Route("/admin/players/{user_id}/unban", unban, methods=["POST"]),
    Route("/admin/players/{user_id}/adjust", adjust, methods=["POST"]),
    Route("/admin/players/{user_id}/score", remove_score, methods=["DELETE"]),
    Route("/admin/players/{user_id}/history", history, methods=["GET"]),
    Route("/admin/players/{user_id}/devices", player_devices, methods=["GET"]),
    Route("/admin/flagged", flagged, methods=["GET"]),
    Route("/admin/devices/flagged", flagged_devices, methods=["GET"]),
    Route("/admin/devices/{device_id}", device, methods=["GET"]),
    Route("/admin/devices/{device_id}/block", block_device, methods=["POST"]),
    Route("/admin/devices/{device_id}/unblock", unblock_device, methods=["POST"]),
    Route("/admin/audit", audit, methods=["GET"]),
]
