#!/usr/bin/env bash
# Starts a one-node Garage (the production-grade S3 server the HA stack runs) on loopback for
# `make bench`: S3 on 127.0.0.1:${GALLERY_BENCH_GARAGE_PORT:-3910}, RPC and admin on the two
# ports after it, data under target/garage. Installs it from crates.io on first use (about 15
# minutes on 2 cores). Prints the environment the gallery needs to use it (eval it).
#
# Why not the tests' s3s-fs: it serves a GET in 4 KiB reads, each a hop to a blocking thread,
# so a 12 MP original took 45 ms to fetch on loopback, and its own CPU competed with the
# engine's; the pipeline bench measures the gallery, not its test server. The tests keep s3s-fs
# (seconds to start, nothing to configure); the code is the same for any path-style S3.
set -euo pipefail
port=${GALLERY_BENCH_GARAGE_PORT:-3910}
root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/target/garage"
log="$root/target/garage.log"
config="$dir/garage.toml"
# Fixed bench-only credentials (Garage wants GK + 24 hex digits and 64 hex digits); the server
# listens on loopback only.
key_id=GK0000000000000000000be0c1
secret=00000000000000000000000000000000000000000000000000000000be0c1be0

version=2.5.0
garage=$(command -v garage || echo "$HOME/.cargo/bin/garage")
if [ ! -x "$garage" ] || ! "$garage" --version 2>/dev/null | grep -q ":$version "; then
  echo "Installing Garage $version (S3 server for the bench) from crates.io; this takes a while once..." >&2
  cargo install "garage@$version" --locked --no-default-features --features bundled-libs,lmdb >&2
  garage="$HOME/.cargo/bin/garage"
fi

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
g() { "$garage" -c "$config" "$@"; }

if ! listening "$port"; then
  mkdir -p "$dir/meta" "$dir/data"
  cat >"$config" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "lmdb"
# Photos are compressed already: zstd would spend CPU on every PUT (and GET) for ~1 %.
compression_level = "none"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$((port + 1))"
rpc_public_addr = "127.0.0.1:$((port + 1))"
rpc_secret = "$(printf 'be0c%.0s' $(seq 16))"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$port"

[admin]
api_bind_addr = "127.0.0.1:$((port + 2))"
EOF
  nohup "$garage" -c "$config" server >"$log" 2>&1 &
  for _ in $(seq 1 100); do listening "$port" && break; sleep 0.1; done
  listening "$port" || { echo "Garage did not start; see $log" >&2; cat "$log" >&2; exit 1; }
fi

# The layout (one node holding everything), the key and its right to create buckets: each
# step only once, so the script can run again against a running server.
for _ in $(seq 1 50); do g status >/dev/null 2>&1 && break; sleep 0.2; done
if g status 2>/dev/null | grep -q "NO ROLE ASSIGNED"; then
  node=$(g node id -q | cut -d@ -f1)
  g layout assign -z bench -c 1G "$node" >/dev/null
  g layout apply --version "$(($(g layout show | sed -n 's/.*Current cluster layout version: \([0-9]*\).*/\1/p') + 1))" >/dev/null
fi
if ! g key info "$key_id" >/dev/null 2>&1; then
  g key import --yes -n bench "$key_id" "$secret" >/dev/null
fi
g key allow --create-bucket "$key_id" >/dev/null
echo "GALLERY_S3_ENDPOINT=http://127.0.0.1:$port GALLERY_S3_ACCESS_KEY=$key_id GALLERY_S3_SECRET_KEY=$secret"
