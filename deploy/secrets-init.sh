#!/bin/sh
# The compose stack's `secrets` service: runs once before everything else, as root, and makes sure
# every secret the stack needs is in DIR (the `secrets` named volume). Each secret is, in order:
#   - the value given in the environment (bring your own: set it in .env), else
#   - the value already stored (a restart or `down`/`up` keeps it), else
#   - a new random one (32 letters and digits from /dev/urandom).
# It never prints a secret, only the names of the files it wrote. The files belong to the gallery
# user (uid 10001), mode 0400; the stores read them as root in their own containers.
#
#   s3_access_key, s3_secret_key   MinIO's root credentials, the app's S3 key pair
#   redis_password                 Redis `requirepass`
#   rabbitmq_password              RabbitMQ user `gallery` (created with it on RabbitMQ's first start)
#   redis_url, amqp_url            the app's connection URLs, with the passwords above
set -eu
dir=${1:-/run/gallery-secrets}
owner=10001:10001
umask 077

mkdir -p "$dir"
written=""

# write NAME VALUE: atomically (temp file, then rename), only when the value changes.
write() {
  if [ -f "$dir/$1" ] && [ "$(cat "$dir/$1")" = "$2" ]; then return 0; fi
  tmp="$dir/.$1.tmp"
  printf '%s\n' "$2" > "$tmp"
  chown "$owner" "$tmp"
  chmod 0400 "$tmp"
  mv -f "$tmp" "$dir/$1"
  written="$written $1"
}

random() {
  # Letters and digits only: safe inside URLs and config files, 190 bits for 32 characters.
  LC_ALL=C tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 32
}

# secret NAME VARIABLE: the variable's value when set, else the stored value, else a new one.
secret() {
  eval "given=\${$2:-}"
  if [ -n "$given" ]; then
    case "$given" in
      *[!A-Za-z0-9._~-]*)
        echo "secrets: $2 may only hold letters, digits and . _ ~ - (it goes into URLs)" >&2
        exit 1 ;;
    esac
    if [ "${#given}" -lt 8 ]; then
      echo "secrets: $2 is too short (at least 8 characters)" >&2
      exit 1
    fi
    write "$1" "$given"
  elif [ ! -s "$dir/$1" ]; then
    write "$1" "$(random)"
  fi
}

# deploy/ha/secrets-init.sh sources this file for the functions above and makes its own secrets.
if [ -n "${GALLERY_SECRETS_FUNCTIONS_ONLY:-}" ]; then return 0; fi

secret s3_access_key MINIO_ROOT_USER
secret s3_secret_key MINIO_ROOT_PASSWORD
secret redis_password REDIS_PASSWORD
secret rabbitmq_password RABBITMQ_PASSWORD
write redis_url "redis://:$(cat "$dir/redis_password")@redis:6379"
write amqp_url "amqp://gallery:$(cat "$dir/rabbitmq_password")@rabbitmq:5672/%2f"

chown "$owner" "$dir"
chmod 0500 "$dir"
if [ -n "$written" ]; then
  echo "secrets: wrote$written"
else
  echo "secrets: all present, nothing changed"
fi
