#!/bin/sh
# Writes redis.conf ($1) to $2 with its ACL users' placeholder passwords replaced by
# REDIS_APP_PASSWORD, REDIS_SYNC_PASSWORD and REDIS_HEALTHCHECK_PASSWORD (docker
# compose takes them from .env). Redis allows each user to be declared once, so the
# passwords cannot be given on its command line instead.
set -eu
for name in REDIS_APP_PASSWORD REDIS_SYNC_PASSWORD REDIS_HEALTHCHECK_PASSWORD; do
  eval "value=\${$name:-}"
  case "$value" in
    '' | *[!A-Za-z0-9_-]*)
      echo "$name: set it to letters, digits, '_' or '-' (openssl rand -hex 32 makes one)" >&2
      exit 1
      ;;
  esac
done
umask 077
sed -e "s/>change-me-app-password/>$REDIS_APP_PASSWORD/" \
    -e "s/>change-me-sync-password/>$REDIS_SYNC_PASSWORD/" \
    -e "s/>change-me-healthcheck-password/>$REDIS_HEALTHCHECK_PASSWORD/" \
    "$1" > "$2"
