#!/usr/bin/env bash
# Starts the S3 server the tests use: s3s-fs on 127.0.0.1:${GALLERY_TEST_S3_PORT:-9100}, data under
# target/s3-data. Installs it from crates.io on first use (about 3 minutes) and reuses a running
# one. Any path-style S3 works for the tests: point GALLERY_TEST_S3_ENDPOINT at it instead.
set -euo pipefail
port=${GALLERY_TEST_S3_PORT:-9100}
root=$(cd "$(dirname "$0")/../.." && pwd)
data="$root/target/s3-data"
log="$root/target/s3-server.log"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if listening; then
  echo "S3 test server already listening on 127.0.0.1:$port"
  exit 0
fi
if ! command -v s3s-fs >/dev/null && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
  echo "Installing s3s-fs (S3 test server) from crates.io; this takes a few minutes once..."
  cargo install s3s-fs@0.14.1 --features binary --locked
fi
s3s=$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")
mkdir -p "$data"
nohup "$s3s" --host 127.0.0.1 --port "$port" \
  --access-key gallery-test --secret-key gallery-test-secret "$data" >"$log" 2>&1 &
for _ in $(seq 1 100); do
  if listening; then echo "S3 test server started on 127.0.0.1:$port (log: $log)"; exit 0; fi
  sleep 0.1
done
echo "S3 test server did not start; see $log" >&2
cat "$log" >&2
exit 1
