#!/bin/sh
# Starts one node of the HA stack's Redis (deploy/ha/docker-compose.yml): `primary` (redis-1),
# `replica` (redis-2, redis-3) or `sentinel` (sentinel-1..3, watching the primary as `gallery`).
#
# Each node runs from a config file on its own data volume, written on its first start only:
# Redis and Sentinel rewrite that file themselves when a failover moves the primary (who replicates
# whom, the current epoch), so a node that restarts later comes back in the role the cluster gave
# it, not in the one it started with. Only the password lines are renewed at every start, from
# the `secrets` volume (the file stays on the node's own volume, readable by Redis only).
# Every node announces its compose hostname, so Sentinel hands the app names Docker resolves.
set -eu
role=$1
password=$(cat /run/gallery-secrets/redis_password)
host=$(hostname)
umask 077
cd /data

# renew FILE PATTERN LINES: drops the lines matching PATTERN, appends LINES.
renew() {
  grep -v "$2" "$1" > "$1.new" || true
  printf '%s\n' "$3" >> "$1.new"
  mv -f "$1.new" "$1"
}

case "$role" in
  primary | replica)
    conf=/data/gallery.conf
    if [ ! -f "$conf" ]; then
      {
        # Durability: every write in the append-only file, fsynced every second. What a failover
        # may lose of what the app was told is stored, and the setting that makes it nothing, is
        # in the README ("Running it highly available", Redis Sentinel).
        echo "appendonly yes"
        echo "appendfsync everysec"
        echo "replica-announce-ip $host"
        if [ "$role" = replica ]; then echo "replicaof redis-1 6379"; fi
      } > "$conf"
    fi
    renew "$conf" '^\(requirepass\|masterauth\) ' "requirepass $password
masterauth $password"
    exec docker-entrypoint.sh redis-server "$conf"
    ;;
  sentinel)
    conf=/data/sentinel.conf
    if [ ! -f "$conf" ]; then
      # A quorum of 2 of the 3 Sentinels declares the primary down after 5 s without an answer.
      cat > "$conf" <<EOF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $host
sentinel monitor gallery redis-1 6379 2
sentinel down-after-milliseconds gallery 5000
sentinel failover-timeout gallery 60000
sentinel parallel-syncs gallery 1
EOF
    fi
    # The app authenticates to the Sentinels with the data nodes' password (fred uses the URL's
    # password for both), and the Sentinels to each other and to the data nodes the same way.
    renew "$conf" '^\(requirepass\|sentinel auth-pass\|sentinel sentinel-pass\) ' "requirepass $password
sentinel auth-pass gallery $password
sentinel sentinel-pass $password"
    exec docker-entrypoint.sh redis-server "$conf" --sentinel
    ;;
  *)
    echo "redis-node: unknown role $role (primary, replica or sentinel)" >&2
    exit 2
    ;;
esac
