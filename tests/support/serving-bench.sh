#!/usr/bin/env bash
# How fast a logged-in person's images are served (issue #11 point 5): wrk, 32 connections,
# against `gallery serve` (embedded backends) and against the web role on the services (the S3
# test server, Redis and RabbitMQ on loopback, a worker only until the photo is processed).
# One photo is uploaded; then the thumbnail, the preview and the photo's JSON are asked for
# with the session cookie, and one line per figure is printed, with the gallery process's own
# CPU time per request (steadier than the rate when the cores are shared):
#   serving serve    thumb     15234 req/s    61 us CPU/request  (16923 bytes, ...)
# Usage: tests/support/serving-bench.sh [PHOTO.jpg]   (run from the repository; `make bench`)
# Settings: GALLERY_BIN (target/release/gallery), BENCH_SECONDS (10), BENCH_CONNECTIONS (32),
# BENCH_TARGETS ("serve services"). Needs the release binary, wrk (installed by
# tests/support/install-deps.sh) and, for `services`, `make test-deps`' services.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${GALLERY_BIN:-$root/target/release/gallery}
photo=${1:-}
seconds=${BENCH_SECONDS:-10}
connections=${BENCH_CONNECTIONS:-32}
targets=${BENCH_TARGETS:-serve services}
email=bench@gallery.test
password=bench-password
# The services' namespace (bucket, Redis prefix, queues), reused run after run: its Redis keys
# are cleared at the start (so the bench admin is made anew), its photo deleted at the end.
tag=gallery-bench

command -v wrk >/dev/null || bash "$root/tests/support/install-deps.sh"
[ -x "$bin" ] || { echo "no gallery binary at $bin: run \`make build\`" >&2; exit 1; }
if [ -z "$photo" ]; then
  photo=$(find "$root/target/photos/real" -name '*.jpg' 2>/dev/null | sort | head -n1 || true)
fi
if [ -z "$photo" ] || [ ! -f "$photo" ]; then
  # No photo set fetched: any JPEG will do; make one.
  photo=$(mktemp --suffix=.jpg)
  trap 'rm -f "$photo"' EXIT
  if command -v vips >/dev/null; then
    vips black "$photo" 2400 1600 --bands 3 >/dev/null
  else
    echo "no photo given and none under target/photos/real (and no vips to make one)" >&2
    exit 1
  fi
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() {
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$1 did not answer" >&2
  return 1
}

# Logs in, uploads the photo, waits until it is done; sets $cookie, $thumb, $preview, $json.
prepare() {
  local base=$1 jar id status body
  jar=$(mktemp)
  curl -fsS -c "$jar" -o /dev/null -H 'content-type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"$password\"}" "$base/api/session"
  cookie="gallery_session=$(awk '$6 == "gallery_session" {print $7}' "$jar")"
  rm -f "$jar"
  id=$(curl -fsS -H "cookie: $cookie" -F "file=@$photo" "$base/api/photos" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["photos"][0]["id"])')
  for _ in $(seq 1 600); do
    body=$(curl -fsS -H "cookie: $cookie" "$base/api/photos/$id")
    status=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["status"])' "$body")
    [ "$status" = done ] && break
    [ "$status" = failed ] && { echo "the photo failed: $body" >&2; return 1; }
    sleep 0.1
  done
  [ "$status" = done ] || { echo "the photo was not processed in 60 s" >&2; return 1; }
  thumb=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["variants"]["thumb"]["url"])' "$body")
  preview=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["variants"]["preview"]["url"])' "$body")
  json="/api/photos/$id"
}

delete_photo() {
  curl -fsS -o /dev/null -X DELETE -H "cookie: $cookie" "$1$json" || true
}

# CPU time (user + system, in clock ticks) the process has used so far.
cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$1/stat"
}

# Prints "serving TARGET WHAT N req/s" for each of thumb, preview, json, with the gallery
# process's own CPU per request: on shared cores the rate moves with the neighbours' load,
# the CPU per request much less (the stores' CPU on the services is not in it).
measure() {
  local target=$1 base=$2 pid=$3 what path size out rate requests before after cpu
  local tick_us=$((1000000 / $(getconf CLK_TCK)))
  for what in thumb preview json; do
    case $what in thumb) path=$thumb ;; preview) path=$preview ;; json) path=$json ;; esac
    size=$(curl -fsS -H "cookie: $cookie" -o /dev/null -w '%{size_download}' "$base$path")
    # A short warm-up, so the figure is the steady state, not the first misses.
    wrk -t 2 -c "$connections" -d 1s -H "cookie: $cookie" "$base$path" >/dev/null
    before=$(cpu_ticks "$pid")
    out=$(wrk -t 2 -c "$connections" -d "${seconds}s" -H "cookie: $cookie" "$base$path")
    after=$(cpu_ticks "$pid")
    rate=$(awk '/^Requests\/sec/ {printf "%d", $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    cpu=$(( (after - before) * tick_us / (requests > 0 ? requests : 1) ))
    grep -q 'Non-2xx' <<<"$out" && rate="$rate (errors!)"
    printf 'serving %-8s %-7s %7s req/s  %4s us CPU/request  (%s bytes, %s connections, load %s)\n' \
      "$target" "$what" "$rate" "$cpu" "$size" "$connections" "$(cut -d' ' -f1 /proc/loadavg)"
  done
}

pids=()
scratch=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for dir in "${scratch[@]}"; do rm -rf "$dir"; done
}
trap cleanup EXIT

for target in $targets; do
  port=$(free_port)
  base="http://127.0.0.1:$port"
  data=$(mktemp -d)
  scratch+=("$data")
  common=(GALLERY_LISTEN="127.0.0.1:$port" GALLERY_HEALTH_LISTEN=127.0.0.1:0
    GALLERY_DATA_DIR="$data" GALLERY_STATIC_DIR="$root/static"
    GALLERY_ADMIN_EMAIL="$email" GALLERY_ADMIN_PASSWORD="$password" GALLERY_LOG=warn)
  case $target in
    serve)
      env "${common[@]}" "$bin" serve >"$data/serve.log" 2>&1 &
      pids+=($!)
      wait_http "$base/healthz"
      prepare "$base"
      measure serve "$base" "${pids[0]}"
      ;;
    services)
      redis=${GALLERY_TEST_REDIS_URL:-redis://127.0.0.1:6379}
      redis-cli -u "$redis" --scan --pattern "$tag:*" | xargs -r redis-cli -u "$redis" del >/dev/null
      services=(GALLERY_S3_ENDPOINT="${GALLERY_TEST_S3_ENDPOINT:-http://127.0.0.1:9100}"
        GALLERY_S3_ACCESS_KEY=gallery-test GALLERY_S3_SECRET_KEY=gallery-test-secret
        GALLERY_S3_BUCKET="$tag" GALLERY_REDIS_URL="$redis"
        GALLERY_REDIS_PREFIX="$tag:" GALLERY_JOB_QUEUE="$tag"
        GALLERY_AMQP_URL="${GALLERY_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}")
      env "${common[@]}" "${services[@]}" "$bin" web >"$data/web.log" 2>&1 &
      pids+=($!)
      wait_http "$base/healthz"
      env "${common[@]}" "${services[@]}" "$bin" worker >"$data/worker.log" 2>&1 &
      worker=$!
      pids+=("$worker")
      prepare "$base"
      # The worker's work is done: measure the web role alone.
      kill "$worker"
      wait "$worker" 2>/dev/null || true
      measure services "$base" "${pids[0]}"
      delete_photo "$base"
      ;;
    *) echo "unknown target $target (serve, services)" >&2; exit 1 ;;
  esac
  kill "${pids[0]}" 2>/dev/null || true
  wait "${pids[0]}" 2>/dev/null || true
  pids=()
done
