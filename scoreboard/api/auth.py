"""`/auth/*`: registration, login, refresh rotation, logout."""

from __future__ import annotations

from msgspec import UnsetType
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scoreboard.api.common import address, audit, require_access, services
from scoreboard.auth import audit as audit_events
from scoreboard.auth.devices import named
from scoreboard.core.contract import (
    ActionTokenIssued,
    ActionTokenRequest,
    LoggedOut,
    Login,
    MfaCode,
    MfaConfirmed,
    MfaEnrolment,
    Refresh,
    Register,
    Registered,
    TokenPair,
)
from scoreboard.core.errors import (
    AccountSuspended,
    DeviceRefused,
    InsufficientPermissions,
    InvalidCredentials,
    MfaRequired,
    RateLimitExceeded,
    RefreshTokenRefused,
    ScoreboardError,
)
from scoreboard.core.metrics import ACTION_TOKENS
from scoreboard.core.ratelimit import rate_headers
from scoreboard.http.bodies import read_body
from scoreboard.http.responses import ok


def _pair(pair: TokenPair, extra_headers: dict[str, str] | None = None) -> Response:
    headers = {"Cache-Control": "no-store", **(extra_headers or {})}
    return ok(pair, headers=headers)


async def register(request: Request) -> Response:
    svc = services(request)
    if not svc.settings.allow_registration:
        raise InsufficientPermissions("Registration is disabled on this server")
    body = await read_body(request, Register)
    user = await svc.accounts.create(body.username, body.email, body.password)
    return ok(Registered(user_id=user.id, username=user.username, email=user.email), status=201)


_LOGIN_REFUSALS: dict[type[ScoreboardError], tuple[str, str]] = {
    InvalidCredentials: (audit_events.LOGIN_FAILED, "refused"),
    RateLimitExceeded: (audit_events.LOGIN_THROTTLED, "throttled"),
    AccountSuspended: (audit_events.LOGIN_SUSPENDED, "refused"),
    MfaRequired: (audit_events.MFA_REFUSED, "refused"),
    DeviceRefused: (audit_events.LOGIN_DEVICE_REFUSED, "refused"),
}
# the same classes as the keys above, spelled out so the handler knows their attributes
_REFUSED = (InvalidCredentials, RateLimitExceeded, AccountSuspended, MfaRequired, DeviceRefused)


async def login(request: Request) -> Response:
    body = await read_body(request, Login)
    otp = None if isinstance(body.otp, UnsetType) else body.otp
    device = None if isinstance(body.device, UnsetType) else named(body.device)
    try:
        logged_in = await services(request).sessions.login(
            body.username, body.password, address(request), otp, device
        )
    except _REFUSED as refused:
        event_type, result = _LOGIN_REFUSALS[type(refused)]
        # a throttled login is refused before the account is looked up
        account_id = None if isinstance(refused, RateLimitExceeded) else refused.account_id
        name = body.username
        details = {"username": name} if account_id else services(request).audit.unknown_name(name)
        if isinstance(refused, MfaRequired | DeviceRefused):  # the password matched
            details = {"username": name, **refused.details}
        await audit(
            request,
            event_type,
            user_id=account_id,
            result=result,
            details=details,
            flood=True,
        )
        raise
    pair = logged_in.pair
    if logged_in.otp_passed == "recovery":
        await audit(request, audit_events.MFA_RECOVERY_USED, user_id=pair.user_id)
    registered = logged_in.device
    if registered is not None and registered.flagged_now:
        details = {"device_id": registered.device.handle, "players": registered.players}
        await audit(request, audit_events.DEVICE_FLAGGED, user_id=pair.user_id, details=details)
    return _pair(pair, rate_headers(logged_in.rate))


async def mfa_enroll(request: Request) -> Response:
    """A new one-time-password secret and recovery codes for the signed-in account,
    on once confirmed."""
    claims = await require_access(request)
    enrolment = await services(request).otp.enroll(claims.user_id, claims.username)
    await audit(request, audit_events.MFA_ENROLLED, user_id=claims.user_id)
    data = MfaEnrolment(
        secret=enrolment.secret,
        otpauth_uri=enrolment.uri,
        recovery_codes=enrolment.recovery_codes,
    )
    return ok(data, headers={"Cache-Control": "no-store"})


async def mfa_confirm(request: Request) -> Response:
    claims = await require_access(request)
    body = await read_body(request, MfaCode)
    await services(request).otp.confirm(claims.user_id, body.code)
    await audit(request, audit_events.MFA_CONFIRMED, user_id=claims.user_id)
    return ok(MfaConfirmed())


async def refresh(request: Request) -> Response:
    body = await read_body(request, Refresh)
    try:
        pair = await services(request).sessions.refresh(body.refresh_token)
    except RefreshTokenRefused as refused:
        await audit(
            request,
            audit_events.REFRESH_REUSE,
            user_id=refused.user_id,
            result="revoked",
            details={"session_id": refused.session_id},
            flood=True,
        )
        raise
    return _pair(pair)


async def logout(request: Request) -> Response:
    claims = await require_access(request)
    await services(request).sessions.revoke(claims.session_id, "logout")
    await audit(
        request,
        audit_events.LOGOUT,
        user_id=claims.user_id,
        details={"session_id": claims.session_id},
    )
    return ok(LoggedOut())


async def action_token(request: Request) -> Response:
    claims = await require_access(request)
    body = await read_body(request, ActionTokenRequest)
    issued = await services(request).action_tokens.issue(claims.user_id, body, claims.device)
    ACTION_TOKENS.inc()
    data = ActionTokenIssued(
        action_token=issued.action_token,
        expires_in=issued.expires_in,
        max_score_increase=issued.max_score_increase,
    )
    headers = {**rate_headers(issued.rate), "Cache-Control": "no-store"}
    return ok(data, headers=headers)


routes = [
    Route("/auth/register", register, methods=["POST"]),
    Route("/auth/login", login, methods=["POST"]),
    Route("/auth/refresh", refresh, methods=["POST"]),
    Route("/auth/logout", logout, methods=["POST"]),
    Route("/auth/action-token", action_token, methods=["POST"]),
    Route("/auth/mfa/enroll", mfa_enroll, methods=["POST"]),
    Route("/auth/mfa/confirm", mfa_confirm, methods=["POST"]),
]
