# syntax=docker/dockerfile:1
# The service image: the wheel and its dependencies built once, installed into a slim
# runtime that runs as an unprivileged user. No embedded-mode stores (the `embedded`
# extra): the image runs against real Redis and PostgreSQL (REDIS_URL, DATABASE_URL).

FROM python:3.11.10-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY lua ./lua
COPY scoreboard ./scoreboard
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.10-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="scoreboard" \
      org.opencontainers.image.description="Redis-first live leaderboard service" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"
RUN useradd --system --uid 10001 --user-group --home-dir /app --create-home scoreboard \
 && install -d -o scoreboard -g scoreboard /tls
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels scoreboard && rm -rf /wheels
USER scoreboard
WORKDIR /app
ENV PYTHONUNBUFFERED=1 \
    SCOREBOARD_LOG_FORMAT=json
EXPOSE 8000
# serve drains on SIGTERM: WebSockets closed with 1001, SSE ended, requests finished
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
ENTRYPOINT ["scoreboard"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
