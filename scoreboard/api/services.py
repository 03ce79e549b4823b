"""Every long-lived resource of one process, opened at start-up and closed at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
from starlette.concurrency import run_in_threadpool

from scoreboard.auth.accounts import Accounts
from scoreboard.auth.audit import AuditTrail
from scoreboard.auth.devices import Devices
from scoreboard.auth.mfa import OneTimePasswords
from scoreboard.auth.passwords import PasswordHasher
from scoreboard.auth.revocations import Revocations
from scoreboard.auth.sessions import Sessions
from scoreboard.auth.tokens import LEEWAY_SECONDS, TokenCodec
from scoreboard.boards.catalogue import BoardCatalog
from scoreboard.boards.feed import BoardFeed
from scoreboard.boards.guard import BoardGuard
from scoreboard.boards.leaderboard import Leaderboard
from scoreboard.boards.moderation import Admin
from scoreboard.boards.rebuild import PeriodClock
from scoreboard.boards.runtime import BoardRuntimes
from scoreboard.core.ratelimit import LeasingLimiter, RateLimiter
from scoreboard.core.settings import Settings
from scoreboard.live.channels import BoardChannels
from scoreboard.live.feeds import LiveFeeds
from scoreboard.scoring.action_tokens import ActionTokens
from scoreboard.scoring.updates import Scoring
from scoreboard.storage import embedded
from scoreboard.storage import pipeline as redis_pipeline
from scoreboard.storage import redis_client as redis_store
from scoreboard.storage.cluster_pipeline import ClusterPipelines
from scoreboard.storage.database import create_pool
from scoreboard.storage.keys import DEFAULT_BOARD, Keys
from scoreboard.storage.migrations import migrate
from scoreboard.storage.pipeline import PipelinedConnection
from scoreboard.storage.preflight import check_postgres, redis_warnings
from scoreboard.storage.read_replicas import ReadPools
from scoreboard.storage.redis_client import RedisClient
from scoreboard.storage.scripts import Scripts
from scoreboard.sync.status import SyncWatch


def resolve_embedded_secrets(settings: Settings) -> Settings:
    """Fill in JWT secrets from the data directory when running embedded."""
    if not settings.embedded or (settings.jwt_secret and settings.jwt_refresh_secret):
        return settings
    stored = embedded.load_or_create_secrets(settings.data_dir)
    return dataclasses.replace(
        settings,
        jwt_secret=settings.jwt_secret or stored["jwt_secret"],
        jwt_refresh_secret=settings.jwt_refresh_secret or stored["jwt_refresh_secret"],
    )


async def open_database(settings: Settings) -> tuple[asyncpg.Pool, Any]:
    """The pool (migrated), plus the embedded server handle when there is one."""
    server = None
    dsn = settings.database_url
    if dsn is None:
        dsn, server = await embedded.start_postgres(settings.data_dir)
    else:
        await check_postgres(settings)  # unreachable: one line naming it
    pool = await create_pool(dsn, size=settings.db_pool_size)
    await migrate(pool)
    return pool, server


@dataclass
class Services:
    settings: Settings
    redis: RedisClient
    pool: asyncpg.Pool
    reads: ReadPools
    keys: Keys
    scripts: Scripts
    limiter: RateLimiter
    read_limiter: LeasingLimiter  # the public reads' rule, leased a few requests at a time
    accounts: Accounts
    otp: OneTimePasswords
    devices: Devices
    sessions: Sessions
    action_tokens: ActionTokens
    leaderboard: Leaderboard
    scoring: Scoring
    feed: BoardFeed
    guard: BoardGuard
    sync_watch: SyncWatch
    audit: AuditTrail
    admin: Admin
    catalog: BoardCatalog
    boards: BoardRuntimes
    live: LiveFeeds
    started_at: float
    embedded_pg: Any = None
    pipelined: PipelinedConnection | None = None
    routed: ClusterPipelines | None = None
    syncer: Any = None
    hasher: PasswordHasher | None = None
    syncer_task: asyncio.Task[None] | None = None
    tidy_task: asyncio.Task[None] | None = None
    redis_warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def run_mode(self) -> str:
        return "embedded" if self.settings.embedded else "external"

    @classmethod
    async def open(cls, settings: Settings, *, clock_offset_ms: int = 0) -> Services:
        """`clock_offset_ms` moves this process's clock for periods forward (tests)."""
        settings = resolve_embedded_secrets(settings)
        pool, server = await open_database(settings)
        redis = (
            redis_store.connect_for(settings)
            if settings.redis_url
            else redis_store.connect_in_process()
        )
        reads = await ReadPools.open(
            pool,
            settings.database_read_url,
            size=settings.db_pool_size,
            max_lag_seconds=settings.db_read_max_lag_seconds,
        )
        services = await cls.assemble(settings, redis, pool, server, clock_offset_ms, reads)
        reads.start()
        if settings.redis_url and not settings.redis_cluster:  # (a node's: see preflight)
            services.redis_warnings = await redis_warnings(redis, settings, quiet=True)
        await services.catalog.refresh()
        services.catalog.start()
        await services.guard.check()
        services.boards.start()
        # the board of the board-less routes is followed for as long as the process runs
        await services.live.channels.hold(services.boards.runtime(DEFAULT_BOARD), services.feed)
        services.sync_watch.start()
        if settings.redis_cluster:
            services.tidy_task = asyncio.create_task(
                redis_store.keep_replica_connections_closed(redis),
                name="redis-replica-connections",
            )
        if settings.embedded:
            services.start_embedded_syncer()
        return services

    def start_embedded_syncer(self) -> None:
        """In embedded mode the syncer runs inside the server process."""
        from scoreboard.sync import SyncFleet

        self.syncer = SyncFleet(self.settings, self.redis, self.pool, clock=self.boards.clock)
        self.syncer_task = asyncio.create_task(self.syncer.run(), name="embedded-syncer")

    @classmethod
    async def assemble(
        cls,
        settings: Settings,
        redis: RedisClient,
        pool: asyncpg.Pool,
        server: Any = None,
        clock_offset_ms: int = 0,
        reads: ReadPools | None = None,
    ) -> Services:
        """`reads`: where the reads that may be a moment stale go (the primary when
        not given)."""
        assert settings.jwt_secret and settings.jwt_refresh_secret
        if reads is None:
            reads = ReadPools(pool, [], settings.db_read_max_lag_seconds)
        keys = Keys.for_settings(settings)
        pipelined = (
            PipelinedConnection(settings.redis_url, redis_store.SOCKET_TIMEOUT_SECONDS)
            if settings.redis_url
            and not settings.redis_cluster
            and redis_pipeline.supports(settings.redis_url)
            else None
        )
        routed = (
            ClusterPipelines(redis, redis_store.SOCKET_TIMEOUT_SECONDS)
            if settings.redis_cluster
            else None
        )
        wait = (
            (settings.redis_wait_replicas, settings.redis_wait_ms)
            if settings.redis_wait_replicas
            else None
        )
        scripts = Scripts(redis, pipelined, routed=routed, wait=wait)
        limiter = RateLimiter(scripts)
        hasher = await run_in_threadpool(
            functools.partial(
                PasswordHasher,
                settings.bcrypt_rounds,
                workers=settings.hash_workers or None,
                queue_limit=settings.hash_queue_limit or None,
                wait_ms=settings.hash_wait_ms,
            )
        )
        accounts = Accounts(pool, hasher)
        otp = OneTimePasswords(pool, settings, limiter, keys)
        codec = TokenCodec(
            settings.jwt_secret, settings.jwt_refresh_secret, settings.access_token_ttl
        )
        revocations = Revocations(redis, keys, settings.access_token_ttl + LEEWAY_SECONDS)
        devices = Devices(pool, settings, revocations)
        sessions = Sessions(
            settings=settings,
            pool=pool,
            revocations=revocations,
            keys=keys,
            codec=codec,
            hasher=hasher,
            accounts=accounts,
            limiter=limiter,
            otp=otp,
            devices=devices,
        )
        catalog = BoardCatalog(pool, settings)
        boards = BoardRuntimes(
            redis=redis,
            pool=pool,
            scripts=scripts,
            keys=keys,
            catalog=catalog,
            top_n=settings.live_top_n,
            clock=PeriodClock.from_settings(settings, clock_offset_ms),
        )
        default = boards.runtime(DEFAULT_BOARD)

        def open_feed(name: str) -> BoardFeed:
            return BoardFeed(
                redis,
                keys,
                name,
                url=settings.redis_url if pipelined else None,
                cluster=settings.redis_cluster,
            )

        feed = open_feed(DEFAULT_BOARD)  # its connection carries the revocations too
        live = LiveFeeds(boards, BoardChannels(open_feed), settings.broadcast_interval_ms)
        revocations.follow(live.session_revoked)
        feed.add_channel(revocations.channel, revocations)
        board, leaderboard = default.keys, default.leaderboard
        audit = AuditTrail(scripts, board, settings)
        admin = Admin(
            settings=settings,
            pool=pool,
            reads=reads,
            scripts=scripts,
            board=board,
            accounts=accounts,
            sessions=sessions,
            audit=audit,
            leaderboard=leaderboard,
            boards=boards,
        )
        return cls(
            settings=settings,
            redis=redis,
            pool=pool,
            reads=reads,
            keys=keys,
            scripts=scripts,
            limiter=limiter,
            read_limiter=LeasingLimiter(scripts, settings.rate_limit_leaderboard_lease),
            accounts=accounts,
            otp=otp,
            devices=devices,
            sessions=sessions,
            action_tokens=ActionTokens(scripts, keys, settings, catalog),
            leaderboard=leaderboard,
            scoring=Scoring(scripts, settings, boards),
            feed=feed,
            guard=default.guard,
            sync_watch=SyncWatch(redis, keys, settings),
            audit=audit,
            admin=admin,
            catalog=catalog,
            boards=boards,
            live=live,
            started_at=time.time(),
            embedded_pg=server,
            pipelined=pipelined,
            routed=routed,
            hasher=hasher,
        )

    async def close(self) -> None:
        if self.syncer is not None and self.syncer_task is not None:
            self.syncer.stop()
            await self.syncer_task
        await self.sync_watch.stop()
        if self.tidy_task is not None:
            self.tidy_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.tidy_task
        await self.boards.stop()
        await self.catalog.stop()
        await self.live.close()
        if self.pipelined is not None:
            await self.pipelined.close()
        if self.routed is not None:
            await self.routed.close()
        await self.redis.aclose()
        await self.reads.close()
        await self.pool.close()
        if self.hasher is not None:
            self.hasher.close()
        if self.embedded_pg is not None:
            await run_in_threadpool(self.embedded_pg.cleanup)
