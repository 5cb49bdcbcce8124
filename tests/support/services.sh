#!/usr/bin/env bash
# Checks that the machine's Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672) the tests share
# are up and usable before anything is built, and starts them through their Debian services when
# they are installed but down (as root). Without this, a broker that crashed (a full disk does
# that) fails every test on the services one by one, and a test that waits for it hangs CI.
# Tests pointed elsewhere (GALLERY_TEST_REDIS_URL, GALLERY_TEST_AMQP_URL) skip this.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts a service with `start` (a command line) when nothing listens on its port, as root.
ensure() {
  local name=$1 port=$2 start=$3
  listening "$port" && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "$name is not listening on 127.0.0.1:$port; starting it: $start"
    bash -c "$start" >/dev/null 2>&1 || true
    for _ in $(seq 1 120); do
      listening "$port" && { echo "$name started"; return 0; }
      sleep 0.5
    done
  fi
  echo "$name is not reachable on 127.0.0.1:$port: start it with \`$start\`" >&2
  exit 1
}

if [ -z "${GALLERY_TEST_REDIS_URL:-}" ]; then
  # As the machine runs it: nothing kept on disk. (Debian's service would save snapshots to a
  # directory it may not be able to write, and then refuse every write: MISCONF.)
  ensure Redis 6379 "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no"
  if ! answer=$(redis-cli -h 127.0.0.1 -p 6379 set gallery:test-deps:probe 1 EX 10 2>&1) \
    || [ "$answer" != OK ]; then
    echo "Redis on 127.0.0.1:6379 listens but refuses a write: $answer" >&2
    exit 1
  fi
fi

if [ -z "${GALLERY_TEST_AMQP_URL:-}" ]; then
  ensure RabbitMQ 5672 "service rabbitmq-server start || rabbitmq-server -detached"
  # A broker in alarm (disk or memory) accepts connections but blocks every publisher: the
  # tests would wait on it until their deadlines, one by one.
  if [ "$(id -u)" -eq 0 ] && command -v rabbitmq-diagnostics >/dev/null; then
    if ! alarms=$(timeout 60 rabbitmq-diagnostics -q check_local_alarms 2>&1); then
      echo "RabbitMQ on 127.0.0.1:5672 is in alarm and blocks publishers:" >&2
      echo "$alarms" >&2
      echo "free disk space (df -h /) or memory, then run the tests again" >&2
      exit 1
    fi
  fi
fi
echo "Redis and RabbitMQ are up"
