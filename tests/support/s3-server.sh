#!/usr/bin/env bash
# Starts the S3 server the tests use: s3s-fs on 127.0.0.1:${GALLERY_TEST_S3_PORT:-9100}, data under
# target/s3-data. Installs it from crates.io on first use (about 3 minutes). A server already
# listening there is reused only if it really works: it must create and delete a bucket. An
# s3s-fs that does not (its data dir was deleted under it, say, by removing the checkout that
# started it) is replaced. Any path-style S3 works for the tests: point GALLERY_TEST_S3_ENDPOINT
# at it instead.
set -euo pipefail
port=${GALLERY_TEST_S3_PORT:-9100}
root=$(cd "$(dirname "$0")/../.." && pwd)
data="$root/target/s3-data"
log="$root/target/s3-server.log"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

# One signed request with the tests' credentials; prints the HTTP status (000: no answer).
s3() {
  curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X "$1" \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user gallery-test:gallery-test-secret \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    "http://127.0.0.1:$port/$2" 2>/dev/null || true
}

works() {
  local bucket="probe-$$-$RANDOM"
  [ "$(s3 PUT "$bucket")" = 200 ] && [ "$(s3 DELETE "$bucket")" = 204 ]
}

if listening; then
  if works; then
    echo "S3 test server already listening on 127.0.0.1:$port, and it works"
    exit 0
  fi
  pid=$(ss -ltnpH "sport = :$port" | grep -o 's3s-fs",pid=[0-9]*' | grep -o '[0-9]*$' | head -n1 || true)
  if [ -z "$pid" ]; then
    echo "Something listens on 127.0.0.1:$port but cannot create a bucket with the tests'" \
      "credentials, and it is not an s3s-fs this script may replace: stop it, or set" \
      "GALLERY_TEST_S3_PORT to a free port." >&2
    exit 1
  fi
  echo "The s3s-fs on 127.0.0.1:$port (pid $pid) cannot create a bucket; replacing it"
  kill "$pid"
  for _ in $(seq 1 50); do listening || break; sleep 0.1; done
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
  if listening && works; then echo "S3 test server started on 127.0.0.1:$port (log: $log)"; exit 0; fi
  sleep 0.1
done
echo "S3 test server did not start; see $log" >&2
cat "$log" >&2
exit 1
