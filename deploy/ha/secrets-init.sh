#!/bin/sh
# The HA stack's `secrets` service (deploy/ha/docker-compose.yml): runs once before everything
# else, as root, and makes sure every secret of the stack is in DIR (the `secrets` volume), with
# the same rules as the single stack's deploy/secrets-init.sh, whose functions it uses: a value
# given in the environment wins, else the stored one is kept, else a new random one is made.
# It prints only the names of the files it wrote, never a value.
#
#   redis_password         Redis `requirepass` on the three data nodes and the three Sentinels
#   rabbitmq_password      RabbitMQ user `gallery` (created on the cluster's first start)
#   erlang_cookie          the RabbitMQ nodes' shared Erlang cookie (it lets them cluster)
#   garage_rpc_secret      Garage's inter-node secret (32 bytes, hex)
#   garage_admin_token     Garage's admin API token (garage-init uses it)
#   redis_url, amqp_url    the app's connection URLs: a Sentinel URL, one AMQP URL per node
#
# The S3 key pair (s3_access_key, s3_secret_key) is not made here: Garage makes keys itself, and
# the `garage-init` service stores the one it made for the app.
set -eu
dir=${1:-/run/gallery-secrets}
GALLERY_SECRETS_FUNCTIONS_ONLY=1
# shellcheck source=../secrets-init.sh
. /usr/local/bin/gallery-secrets-init

# hex32 NAME: a stored value is kept, else 32 random bytes, hex-encoded (Garage's format).
hex32() {
  if [ ! -s "$dir/$1" ]; then
    write "$1" "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
  fi
}

secret redis_password REDIS_PASSWORD
secret rabbitmq_password RABBITMQ_PASSWORD
secret erlang_cookie RABBITMQ_ERLANG_COOKIE
secret garage_admin_token GARAGE_ADMIN_TOKEN
hex32 garage_rpc_secret

redis=$(cat "$dir/redis_password")
rabbit=$(cat "$dir/rabbitmq_password")
# fred's Sentinel URL: the first Sentinel in the authority, the others as `node`; the password is
# the data nodes' and the Sentinels' alike (deploy/ha/redis-node.sh gives both the same).
write redis_url "redis-sentinel://:$redis@sentinel-1:26379/0?sentinelServiceName=gallery&node=sentinel-2:26379&node=sentinel-3:26379"
# One URL per RabbitMQ node, comma-separated: the app connects to the first that answers.
write amqp_url "amqp://gallery:$rabbit@rabbitmq-1:5672/%2f,amqp://gallery:$rabbit@rabbitmq-2:5672/%2f,amqp://gallery:$rabbit@rabbitmq-3:5672/%2f"

chown "$owner" "$dir"
chmod 0500 "$dir"
if [ -n "$written" ]; then
  echo "secrets: wrote$written"
else
  echo "secrets: all present, nothing changed"
fi
