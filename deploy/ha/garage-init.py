"""The HA stack's one-shot `garage-init` (deploy/ha/docker-compose.yml), run at every `up` once
the three Garage nodes answer, before the app starts. Through Garage's admin API (v2) it:

1. tells the first node where the others are (`<node id>@garage-N:3901`), so the nodes find each
   other again after their containers got new addresses;
2. on the first start only, gives each node its role in the cluster layout (a zone of its own, so
   Garage keeps each object's three copies on three different nodes) and applies the layout;
3. makes the app's access key, when the `secrets` volume holds none that Garage knows, and stores
   it there (`s3_access_key`, `s3_secret_key`: Garage makes keys itself, it does not take ours);
4. makes the bucket, when missing, and lets the key read, write and own it.

Each step checks first, so running it again changes nothing. It prints what it did, never a
secret. Settings, from the environment: GARAGE_NODES (`garage-1,garage-2,garage-3`),
GARAGE_CAPACITY (bytes each node offers, default 100 GB), GALLERY_S3_BUCKET (`gallery`).
"""

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

SECRETS = "/run/gallery-secrets"
NODES = os.environ.get("GARAGE_NODES", "garage-1,garage-2,garage-3").split(",")
CAPACITY = int(os.environ.get("GARAGE_CAPACITY", str(100 * 10**9)))
BUCKET = os.environ.get("GALLERY_S3_BUCKET", "gallery")
# The app's user in its image: the secrets it reads belong to it (as deploy/secrets-init.sh does).
OWNER = 10001
WAIT_S = 300


def say(line):
    print(f"garage-init: {line}", flush=True)


def read_secret(name):
    with open(os.path.join(SECRETS, name)) as file:
        return file.read().strip()


def write_secret(name, value):
    """Atomically, mode 0400, owned by the app's user."""
    path = os.path.join(SECRETS, name)
    tmp = os.path.join(SECRETS, f".{name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o400)
    with os.fdopen(fd, "w") as file:
        file.write(value + "\n")
    os.chown(tmp, OWNER, OWNER)
    os.replace(tmp, path)


class Missing(Exception):
    """The admin API answered 404: no such key, bucket, ..."""


def call(node, method, endpoint, body=None, **query):
    url = f"http://{node}:3903/v2/{endpoint}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            data = response.read()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise Missing(endpoint) from None
        detail = error.read().decode(errors="replace")[:500]
        sys.exit(f"garage-init: {endpoint} on {node} answered {error.code}: {detail}")
    return json.loads(data) if data else None


def answering(node):
    try:
        call(node, "GET", "GetClusterHealth")
        return True
    except (OSError, Missing):
        return False


def node_id(node):
    info = call(node, "GET", "GetNodeInfo", node="self")
    (answer,) = info["success"].values()
    return answer["nodeId"]


def wait(what, done):
    deadline = time.monotonic() + WAIT_S
    while not done():
        if time.monotonic() > deadline:
            sys.exit(f"garage-init: {what} not within {WAIT_S} s")
        time.sleep(2)


def connect_and_lay_out():
    """Steps 1 and 2; answers a node that answers."""
    up = [node for node in NODES if answering(node)]
    if not up:
        wait("no Garage node answered", lambda: any(answering(n) for n in NODES))
        up = [node for node in NODES if answering(node)]
    entry = up[0]
    layout = call(entry, "GET", "GetClusterLayout")
    if len(layout["roles"]) >= len(NODES):
        # Laid out already: reconnect whoever answers (a node that is down is found again by the
        # others once it is back), and carry on even with a node missing.
        ids = {node: node_id(node) for node in up}
        peers = [f"{ids[node]}@{node}:3901" for node in up if node != entry]
        if peers:
            call(entry, "POST", "ConnectClusterNodes", peers)
        say(f"layout version {layout['version']} in place; {len(up)} of {len(NODES)} nodes answer")
        return entry

    # First start: every node must be there to be given its role.
    wait("every Garage node answering", lambda: all(answering(n) for n in NODES))
    ids = {node: node_id(node) for node in NODES}
    peers = [f"{ids[node]}@{node}:3901" for node in NODES if node != entry]
    for result in call(entry, "POST", "ConnectClusterNodes", peers):
        if not result["success"]:
            sys.exit(f"garage-init: a node could not be connected: {result.get('error')}")
    wait(
        "the nodes seeing each other",
        lambda: call(entry, "GET", "GetClusterHealth")["connectedNodes"] >= len(NODES),
    )
    laid_out = {role["id"] for role in layout["roles"]}
    roles = [
        {"id": ids[node], "zone": f"zone-{n}", "capacity": CAPACITY, "tags": [node]}
        for n, node in enumerate(NODES, start=1)
        if ids[node] not in laid_out
    ]
    call(entry, "POST", "UpdateClusterLayout", {"roles": roles})
    call(entry, "POST", "ApplyClusterLayout", {"version": layout["version"] + 1})
    say(f"layout version {layout['version'] + 1} applied: {len(NODES)} nodes, 3 copies of each object")
    wait(
        "the cluster healthy",
        lambda: call(entry, "GET", "GetClusterHealth")["status"] == "healthy",
    )
    return entry


def app_key(entry):
    """Step 3: the stored key if Garage knows it, else a new one, stored."""
    try:
        key_id = read_secret("s3_access_key")
        read_secret("s3_secret_key")
        call(entry, "GET", "GetKeyInfo", id=key_id)
        return key_id
    except (FileNotFoundError, Missing):
        pass
    key = call(entry, "POST", "CreateKey", {"name": "gallery"})
    write_secret("s3_secret_key", key["secretAccessKey"])
    write_secret("s3_access_key", key["accessKeyId"])
    say(f"made the app's access key {key['accessKeyId']} (stored: s3_access_key, s3_secret_key)")
    return key["accessKeyId"]


def app_bucket(entry, key_id):
    """Step 4."""
    try:
        bucket = call(entry, "GET", "GetBucketInfo", globalAlias=BUCKET)
    except Missing:
        bucket = call(entry, "POST", "CreateBucket", {"globalAlias": BUCKET})
        say(f"made bucket {BUCKET}")
    allowed = {"read": True, "write": True, "owner": True}
    call(
        entry,
        "POST",
        "AllowBucketKey",
        {"bucketId": bucket["id"], "accessKeyId": key_id, "permissions": allowed},
    )


TOKEN = read_secret("garage_admin_token")

if __name__ == "__main__":
    entry_node = connect_and_lay_out()
    app_bucket(entry_node, app_key(entry_node))
    say("ready")
