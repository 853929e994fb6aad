#!/usr/bin/env bash
# The siam image's entrypoint: maps environment variables to siam-server / siam-client flags, so
# that compose files and Kubernetes manifests configure the programs through `environment:` /
# `env:` alone.
#
#   siam-entrypoint server [EXTRA FLAGS...]   exec siam-server with the SIAM_* server settings
#   siam-entrypoint worker [EXTRA FLAGS...]   wait for the server's port, then exec siam-client
#   siam-entrypoint COMMAND [ARGS...]         exec COMMAND (siam-train, siam-bench, bash, ...)
#
# Only variables that are set (and not empty) become flags; the programs' own defaults apply to
# the rest. EXTRA FLAGS come last, so they win over the environment.
#
# server:
#   SIAM_LISTEN            --listen            (default here 0.0.0.0:50051: serve other containers)
#   SIAM_MIN_WORKERS       --min-workers
#   SIAM_SYNC_TIMEOUT      --sync-timeout
#   SIAM_CHECKPOINT        --checkpoint
#   SIAM_CHECKPOINT_EVERY  --checkpoint-every
#   SIAM_MARGIN            --margin
#   SIAM_THREADS           --threads
#   SIAM_LOG_LEVEL         --log-level
#   SIAM_TLS_CERT          --tls-cert          (TLS: the server's certificate, PEM)
#   SIAM_TLS_KEY           --tls-key           (its private key)
#   SIAM_TLS_CLIENT_CA     --tls-client-ca     (mutual TLS: the CA of the workers' certificates)
#   SIAM_AUTH_TOKEN_FILE   --auth-token-file   (bearer token required on every call)
# worker:
#   SIAM_SERVER            --server            (default here siam-server:50051)
#   SIAM_WORKER_INDEX      --worker-index      (else JOB_COMPLETION_INDEX, set by a Kubernetes
#                                               Indexed Job for each of its pods)
#   SIAM_WORKERS           --workers
#   SIAM_WORKER_ID         --worker-id         (default here siam-worker-<index>)
#   SIAM_SYNC_EVERY        --sync-every
#   SIAM_EPOCHS            --epochs
#   SIAM_MODEL             --model
#   SIAM_BATCH_SIZE        --batch-size
#   SIAM_SEED              --seed
#   SIAM_DATA              --data
#   SIAM_CHECKPOINT        --checkpoint        (a literal {i} becomes the worker index)
#   SIAM_METRICS           --metrics           (a literal {i} becomes the worker index)
#   SIAM_THREADS           --threads
#   SIAM_LOG_LEVEL         --log-level
#   SIAM_TLS_CA            --tls-ca            (TLS: the CA of the server's certificate)
#   SIAM_TLS_CERT          --tls-cert          (mutual TLS: the worker's certificate)
#   SIAM_TLS_KEY           --tls-key           (its private key)
#   SIAM_TLS_SERVER_NAME   --tls-server-name   (the name the server's certificate must hold)
#   SIAM_AUTH_TOKEN_FILE   --auth-token-file   (bearer token sent on every call)
#   SIAM_WAIT_SECONDS      how long to wait for the server's TCP port before starting (default
#                          120; 0 = do not wait). The worker itself gives up at once when the
#                          server cannot be reached, and in compose and Kubernetes the server
#                          may start after the workers.
set -euo pipefail

die() {
  echo "siam-entrypoint: $*" >&2
  exit 2
}

args=()
# flag VAR --flag: appends "--flag $VAR" when VAR is set and not empty
flag() {
  local value=${!1-}
  if [ -n "$value" ]; then args+=("$2" "$value"); fi
}

role=${1:-}
[ $# -gt 0 ] && shift
case "$role" in
  server)
    args+=(--listen "${SIAM_LISTEN:-0.0.0.0:50051}")
    flag SIAM_MIN_WORKERS --min-workers
    flag SIAM_SYNC_TIMEOUT --sync-timeout
    flag SIAM_CHECKPOINT --checkpoint
    flag SIAM_CHECKPOINT_EVERY --checkpoint-every
    flag SIAM_MARGIN --margin
    flag SIAM_THREADS --threads
    flag SIAM_LOG_LEVEL --log-level
    flag SIAM_TLS_CERT --tls-cert
    flag SIAM_TLS_KEY --tls-key
    flag SIAM_TLS_CLIENT_CA --tls-client-ca
    flag SIAM_AUTH_TOKEN_FILE --auth-token-file
    exec siam-server "${args[@]}" "$@"
    ;;

  worker)
    index=${SIAM_WORKER_INDEX:-${JOB_COMPLETION_INDEX:-}}
    [ -n "$index" ] || die "worker: set SIAM_WORKER_INDEX (or run as a Kubernetes Indexed Job, which sets JOB_COMPLETION_INDEX)"
    [[ $index =~ ^[0-9]+$ ]] || die "worker: worker index '$index' is not a number"
    workers=${SIAM_WORKERS:-}
    [ -n "$workers" ] || die "worker: set SIAM_WORKERS to the number of workers"
    [[ $workers =~ ^[0-9]+$ ]] && [ "$index" -lt "$workers" ] ||
      die "worker: worker index $index must be below SIAM_WORKERS ($workers)"
    server=${SIAM_SERVER:-siam-server:50051}

    args+=(--server "$server" --worker-index "$index" --workers "$workers")
    args+=(--worker-id "${SIAM_WORKER_ID:-siam-worker-$index}")
    flag SIAM_SYNC_EVERY --sync-every
    flag SIAM_EPOCHS --epochs
    flag SIAM_MODEL --model
    flag SIAM_BATCH_SIZE --batch-size
    flag SIAM_SEED --seed
    flag SIAM_DATA --data
    [ -z "${SIAM_CHECKPOINT:-}" ] || args+=(--checkpoint "${SIAM_CHECKPOINT//\{i\}/$index}")
    [ -z "${SIAM_METRICS:-}" ] || args+=(--metrics "${SIAM_METRICS//\{i\}/$index}")
    flag SIAM_THREADS --threads
    flag SIAM_LOG_LEVEL --log-level
    flag SIAM_TLS_CA --tls-ca
    flag SIAM_TLS_CERT --tls-cert
    flag SIAM_TLS_KEY --tls-key
    flag SIAM_TLS_SERVER_NAME --tls-server-name
    flag SIAM_AUTH_TOKEN_FILE --auth-token-file

    # wait until the server accepts TCP connections (bash's /dev/tcp; host:port, [v6]:port)
    wait_s=${SIAM_WAIT_SECONDS:-120}
    if [ "$wait_s" != 0 ]; then
      host=${server%:*} port=${server##*:}
      host=${host#\[} host=${host%\]}
      deadline=$((SECONDS + wait_s))
      until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || die "worker: siam-server at $server not reachable after ${wait_s} s"
        sleep 1
      done
    fi
    exec siam-client "${args[@]}" "$@"
    ;;

  "")
    die "usage: siam-entrypoint server|worker [EXTRA FLAGS...] | COMMAND [ARGS...]"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
