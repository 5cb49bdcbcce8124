#!/usr/bin/env python3
"""The pipeline around the engine, against the engine alone (issue #11 points 4 and 6).

`make bench` runs it after the engine table; by hand:
    python3 tests/support/pipeline-bench.py --bin target/release/gallery --photos target/photos

What it measures, on the same files, back to back in one run (the machine is shared, so ratios
taken minutes apart mean little; every line carries the load average when it was taken):

* bench: `gallery bench --threads N` on the backlog (symlinks to every photo of the sets, each
  `--rounds` times), its img/s and the CPU (user + system, from the kernel's accounting of the
  finished child) it spent per photo.
* drain: how fast the gallery works off a backlog of the same photos, from the moment its
  worker starts consuming until the last job is done, with the jobs all waiting beforehand so
  that the uploads' own cost is not in the figure:
    - serve: `gallery serve` takes the uploads and processes them once (warm-up, not timed); it
      is stopped, `gallery reprocess --all` queues every photo again (the embedded backends are
      one process's, so this is how a backlog is made without a running worker), and `serve`
      starts again: timed from its "worker consuming jobs" line to the last "job finished".
    - services: `gallery web` alone takes the uploads (the jobs wait in RabbitMQ), then
      `gallery worker` starts: timed the same way.
  The gallery's CPU per photo is the utime + stime (/proc/PID/stat) its processes (serve; web +
  worker) spent during the drain, divided by the photos; the engine's is bench's.
* latency: on the idle gallery, `--uploads` uploads of one 12 MP photo one after the other, each
  timed from the upload's first byte to the `photo.done` event on /api/events; p50 and p90,
  against the engine's own time for that photo (`gallery bench --threads 1` over the photo
  repeated as many times: seconds / photos). From /metrics, where the time outside the engine
  went: the upload's steps (receive, store, record, queue) and the job's (fetch, store,
  record), and the floor no pipeline around that store can go under, the original's two trips
  through it (stored by the upload, fetched by the job).
* ceiling: the drain rate the cores would allow if none ever idled, each photo costing the CPU
  it cost in the drain (the gallery's, and on the services the stores', which share the cores):
  how much of the gap to bench is waiting, and how much is work.
* memory: VmHWM of the worker (the `serve` process; `gallery worker`) after a drain of only the
  50 MP photos at `--concurrency`.
* bursts (serve): `--bursts` uploads of every photo of the sets, each burst's jobs waited for
  and then `--pause` seconds of rest, longer than tokio's blocking-pool keep-alive (10 s), so
  the threads that ran the engine end and new ones take the next burst: VmRSS after each burst's
  rest, and VmHWM at the end. A process whose memory is not bounded grows burst after burst.

Every figure is one line `pipeline MODE FIGURE: …`, in a fixed order. The services run uses
its own bucket, Redis prefix and queue names (`gallery-bench…`), emptied before and after.
Its S3 is `--s3`: Garage by default (tests/support/garage.sh: one node on loopback, installed
on first use), the production-grade store; `s3s` is the tests' s3s-fs, whose 4 KiB-read GETs
cost a 12 MP original 45 ms and whose CPU competes with the engine's.
"""

import argparse
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ADMIN_EMAIL = "bench@example.com"
ADMIN_PASSWORD = "bench password 1"
BENCH_NAME = "gallery-bench"
SERVICES_ENV = {
    "GALLERY_S3_ENDPOINT": "http://127.0.0.1:9100",
    "GALLERY_S3_ACCESS_KEY": "gallery-test",
    "GALLERY_S3_SECRET_KEY": "gallery-test-secret",
    "GALLERY_S3_BUCKET": BENCH_NAME,
    "GALLERY_REDIS_URL": "redis://127.0.0.1:6379",
    "GALLERY_REDIS_PREFIX": BENCH_NAME + ":",
    "GALLERY_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2f",
    "GALLERY_JOB_QUEUE": BENCH_NAME + ".jobs",
}
TICKS = os.sysconf("SC_CLK_TCK")


def load():
    return open("/proc/loadavg").read().split()[0]


def say(line):
    print(line, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """utime + stime of a running process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


STORES = {"garage": "S3", "s3s-fs": "S3", "beam.smp": "RabbitMQ", "redis-server": "Redis"}


def store_cpu():
    """CPU seconds so far of the stores' server processes on this machine, by store."""
    seconds = dict.fromkeys(STORES.values(), 0.0)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                store = STORES.get(f.read().strip())
            if store:
                seconds[store] += cpu_seconds(pid)
        except OSError:
            continue  # gone meanwhile
    return seconds


def rss_mib(pid, field="VmRSS"):
    """A process's resident memory now (`VmRSS`) or at its peak (`VmHWM`), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib(pid):
    return rss_mib(pid, "VmHWM")


def photos_in(directory):
    return sorted(
        os.path.join(directory, name)
        for name in os.listdir(directory)
        if name.lower().endswith((".jpg", ".jpeg", ".png", ".webp"))
    )


def link_dir(root, name, files):
    """A folder of symlinks named so that `gallery bench` reads them in this order."""
    folder = os.path.join(root, name)
    os.makedirs(folder)
    for i, path in enumerate(files):
        os.symlink(os.path.abspath(path), os.path.join(folder, f"{i:04d}-{os.path.basename(path)}"))
    return folder


def run_bench(binary, folder, threads):
    """`gallery bench`: (img/s, seconds, CPU seconds of the child). Without its quality pass,
    whose full-size reference decodes would count in the child's CPU."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [binary, "bench", folder, "--threads", str(threads), "--no-quality"],
        check=True, capture_output=True, text=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    match = re.search(r"(\d+) images in ([\d.]+) s = ([\d.]+) img/s", out)
    if not match:
        raise SystemExit(f"cannot read gallery bench's line: {out!r}")
    return float(match.group(3)), float(match.group(2)), cpu


class Gallery:
    """One gallery process, its log read line by line and the job lines timed as they come."""

    def __init__(self, binary, role, env, args=(), name=None, drain_with=None):
        """`drain_with`: read the CPU of this process and of those the moment the worker
        starts consuming (`drain_start`)."""
        self.name = name or role
        self.port = free_port()
        full_env = dict(os.environ)
        full_env.update(env)
        full_env["GALLERY_LOG_FORMAT"] = "text"
        full_env.setdefault("GALLERY_LOG", "info")
        command = [binary, role, *args]
        if role in ("serve", "web"):
            command += ["--listen", f"127.0.0.1:{self.port}"]
            self.metrics_port = self.port
        elif role == "worker":
            # Its /metrics: the engine's own time per job, to tell waiting from working.
            self.metrics_port = free_port()
            command += ["--health-listen", f"127.0.0.1:{self.metrics_port}"]
        self.process = subprocess.Popen(
            command, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lock = threading.Condition()
        self.consuming_at = None
        self.done_at = []
        self.failed = 0
        self.log_tail = []
        self.drain_with = drain_with
        self.drain_start = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stderr:
            now = time.monotonic()
            with self.lock:
                self.log_tail = (self.log_tail + [line])[-40:]
                if "worker consuming jobs" in line and self.consuming_at is None:
                    self.consuming_at = now
                    if self.drain_with is not None:
                        processes = (self, *self.drain_with)
                        cpu = sum(cpu_seconds(p.process.pid) for p in processes)
                        self.drain_start = (now, cpu)
                elif "job finished" in line and "outcome=Done" in line:
                    self.done_at.append(now)
                elif "job failed for good" in line:
                    self.failed += 1
                self.lock.notify_all()
        with self.lock:
            self.lock.notify_all()

    def wait_done(self, count, timeout=600):
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.done_at) < count:
                if self.failed:
                    self.fail(f"{self.failed} job(s) failed")
                if self.process.poll() is not None:
                    self.fail("the process ended")
                left = deadline - time.monotonic()
                if left <= 0:
                    self.fail(f"only {len(self.done_at)} of {count} jobs done in {timeout} s")
                self.lock.wait(min(left, 1.0))
            return self.done_at[count - 1]

    def wait_consuming(self, timeout=60):
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.consuming_at is None:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.fail("no 'worker consuming jobs' line")
                self.lock.wait(0.5)

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.fail("the process ended")
            try:
                status, _, _ = request(self.port, "GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.fail("not answering /healthz")

    def fail(self, why):
        tail = "".join(self.log_tail[-20:])
        self.stop()
        raise SystemExit(f"gallery {self.name}: {why}; last log lines:\n{tail}")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def stage_seconds(gallery, family="job"):
    """The time spent in each stage, from its /metrics: of its jobs (fetch, decode, ...,
    record), or with `family="upload"` of the files it accepted (receive, store, record,
    queue)."""
    _, _, body = request(gallery.metrics_port, "GET", "/metrics")
    stages = {}
    pattern = rf'gallery_{family}_stage_duration_seconds_sum\{{.*stage="(\w+)".*\}} (\S+)'
    for line in body.decode().splitlines():
        match = re.match(pattern, line)
        if match:
            stages[match.group(1)] = float(match.group(2))
    return stages


# The job's stages that are the engine's work.
ENGINE_STAGES = ("decode", "resize", "encode")


def engine_seconds(gallery):
    """The time its jobs spent in the engine."""
    stages = stage_seconds(gallery)
    return sum(stages.get(stage, 0.0) for stage in ENGINE_STAGES)


def stage_ms(before, after, count, stage):
    """The mean time of `stage` between two `stage_seconds`, over `count` jobs or files."""
    return 1000 * (after.get(stage, 0.0) - before.get(stage, 0.0)) / count


def stage_list(before, after, count, stages=("fetch", "store", "record")):
    """`fetch 3.1 ms, store 2.0 ms, ...`: each stage's mean over `count` jobs or files (by
    default the job's stages outside the engine)."""
    return ", ".join(f"{stage} {stage_ms(before, after, count, stage):.1f} ms" for stage in stages)


class Stages:
    """The stage times of the jobs (`worker`) and of the uploads (`web`) over a stretch of the
    run: `Stages(web, worker)`, then `.end()` when it is over."""

    def __init__(self, web, worker):
        self.web, self.worker = web, worker
        self.jobs, self.uploads = stage_seconds(worker), stage_seconds(web, "upload")

    def end(self, count):
        """`(engine ms, job stages, upload stages, the original's two trips in ms)` per photo
        of the `count` uploaded and processed since."""
        jobs, uploads = stage_seconds(self.worker), stage_seconds(self.web, "upload")
        engine = sum(stage_ms(self.jobs, jobs, count, stage) for stage in ENGINE_STAGES)
        trips = (stage_ms(self.uploads, uploads, count, "store"),
                 stage_ms(self.jobs, jobs, count, "fetch"))
        upload = stage_list(self.uploads, uploads, count,
                            ("receive", "store", "record", "queue"))
        return engine, stage_list(self.jobs, jobs, count), upload, trips


def request(port, method, path, body=None, headers=None, timeout=120):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


def api_token(port):
    body = json.dumps({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    status, headers, answer = request(
        port, "POST", "/api/session", body, {"Content-Type": "application/json"}
    )
    if status != 200:
        raise SystemExit(f"login refused: {status} {answer[:200]!r}")
    cookie = next(
        value.split(";")[0]
        for name, value in headers
        if name.lower() == "set-cookie" and value.startswith("gallery_session=")
    )
    status, _, answer = request(
        port, "POST", "/api/tokens", json.dumps({"name": "bench"}),
        {"Content-Type": "application/json", "Cookie": cookie,
         "Origin": f"http://127.0.0.1:{port}"},
    )
    if status != 201:
        raise SystemExit(f"token refused: {status} {answer[:200]!r}")
    return json.loads(answer)["token"]


def upload_form(path):
    """The multipart request that uploads one file: (content type, body)."""
    boundary = uuid.uuid4().hex
    with open(path, "rb") as f:
        content = f.read()
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
        f"filename=\"{os.path.basename(path)}\"\r\nContent-Type: image/jpeg\r\n\r\n"
    ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def upload(port, token, path, form=None, sent=None):
    """Uploads one file (`form`: its request, made beforehand); answers the photo's id.
    `sent(...)` is called with the time just before the request goes out."""
    content_type, body = form or upload_form(path)
    if sent:
        sent(time.monotonic())
    status, _, answer = request(port, "POST", "/api/photos", body, {
        "Authorization": f"Bearer {token}",
        "Content-Type": content_type,
    })
    if status != 202:
        raise SystemExit(f"upload of {path} refused: {status} {answer[:300]!r}")
    return json.loads(answer)["photos"][0]["id"]


def upload_all(port, token, files, at_once=4):
    ids, errors = [], []
    pending = list(files)
    lock = threading.Lock()

    def uploader():
        while True:
            with lock:
                if not pending or errors:
                    return
                path = pending.pop(0)
            try:
                photo = upload(port, token, path)
            except BaseException as error:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(error)
                return
            with lock:
                ids.append(photo)

    threads = [threading.Thread(target=uploader) for _ in range(at_once)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"upload failed: {errors[0]}")
    return ids


def delete_all(port, token, ids):
    for photo in ids:
        request(port, "DELETE", f"/api/photos/{photo}", None,
                {"Authorization": f"Bearer {token}"})


class Events:
    """/api/events, read on a thread; `wait_done(id)` answers when that photo's done event came."""

    def __init__(self, port, token):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.connection.request("GET", "/api/events", headers={"Authorization": f"Bearer {token}"})
        self.response = self.connection.getresponse()
        if self.response.status != 200:
            raise SystemExit(f"/api/events answered {self.response.status}")
        self.done = {}
        self.lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        kind = None
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: ") and kind == "photo":
                    data = json.loads(line[6:])
                    if data.get("type") == "photo.done":
                        with self.lock:
                            self.done[data["photo"]["id"]] = time.monotonic()
                            self.lock.notify_all()
                elif line.startswith("event: "):
                    kind = line[7:]
        except Exception:  # noqa: BLE001 - the stream is closed under it at the end
            pass

    def wait_done(self, photo, timeout=60):
        deadline = time.monotonic() + timeout
        with self.lock:
            while photo not in self.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit(f"no photo.done event for {photo} within {timeout} s")
                self.lock.wait(left)
            return self.done[photo]

    def close(self):
        self.connection.close()


def latency(port, token, path, uploads):
    """Upload → done, one after the other: the times in ms, the upload requests' own times
    in ms (until the answer), and the ids."""
    events = Events(port, token)
    times, requests, ids = [], [], []
    try:
        for _ in range(uploads):
            # The clock starts as the request goes out: reading the file and building the
            # form are the client's work, not the gallery's.
            start = []
            photo = upload(port, token, path, upload_form(path), start.append)
            started = start[0]
            requests.append((time.monotonic() - started) * 1000)
            times.append((events.wait_done(photo) - started) * 1000)
            ids.append(photo)
            time.sleep(0.2)  # idle between uploads: each one meets a quiet server
    finally:
        events.close()
    return times, requests, ids


def drain(gallery, count, processes):
    """Waits for `count` jobs done after the worker started: (seconds, CPU seconds of
    `processes` over that time)."""
    gallery.wait_consuming()
    start, cpu_start = gallery.drain_start
    end = gallery.wait_done(count)
    cpu = sum(cpu_seconds(p.process.pid) for p in processes) - cpu_start
    gallery.busy = engine_seconds(gallery)
    return end - start, cpu


def report(mode, count, seconds, cpu, bench, engine_cpu, load_at, busy, slots):
    rate = count / seconds
    say(f"pipeline {mode} drain: {count} photos in {seconds:.2f} s = {rate:.2f} photos/s, "
        f"{100 * rate / bench:.0f} % of bench's {bench:.2f} img/s (load {load_at})")
    # Less hostage to a busy machine than the rate: the share of the drain's time the
    # worker's slots spent in the engine rather than waiting on the rest of the pipeline.
    say(f"pipeline {mode} slots: the engine busy {100 * busy / (slots * seconds):.0f} % of "
        f"{slots} slots x {seconds:.2f} s (load {load_at})")
    per_photo = 1000 * cpu / count
    say(f"pipeline {mode} cpu: {per_photo:.1f} ms/photo = {per_photo / engine_cpu:.2f}x "
        f"the engine's {engine_cpu:.1f} ms/photo (load {load_at})")
    return per_photo


def report_ceiling(mode, count, seconds, gallery_ms, stores_ms, load_at):
    """The fastest drain the cores allow when the gallery and its stores share them: every
    core busy all the time, each photo costing what it cost in this drain."""
    cores = len(os.sched_getaffinity(0))
    ceiling = 1000 * cores / (gallery_ms + stores_ms)
    say(f"pipeline {mode} ceiling: {cores} cores / ({gallery_ms:.1f} ms gallery + "
        f"{stores_ms:.1f} ms stores) CPU per photo = {ceiling:.2f} photos/s; the drain reached "
        f"{100 * count / seconds / ceiling:.0f} % of it (load {load_at})")


def report_latency(mode, times, requests, stages, engine_ms, name, load_at):
    """`stages`: what `Stages.end` answered for those uploads."""
    in_job_ms, job_stages, upload_stages, (store_ms, fetch_ms) = stages
    p50 = statistics.median(times)
    p90 = sorted(times)[int(0.9 * (len(times) - 1))]
    say(f"pipeline {mode} latency: upload->done p50 {p50:.1f} ms, p90 {p90:.1f} ms over "
        f"{len(times)} uploads of {name}; engine {engine_ms:.1f} ms; p50 - engine "
        f"{p50 - engine_ms:+.1f} ms (load {load_at})")
    # The engine's time inside those very jobs (the worker's /metrics): what the pipeline
    # adds, with the machine's load on both sides of the subtraction.
    say(f"pipeline {mode} latency overhead: p50 - the engine's {in_job_ms:.1f} ms in those "
        f"jobs = {p50 - in_job_ms:+.1f} ms, of which the upload request p50 "
        f"{statistics.median(requests):.1f} ms ({upload_stages}); per job {job_stages} "
        f"(load {load_at})")
    # What no pipeline around this store can save: the original goes in once and out once.
    say(f"pipeline {mode} latency floor: the original's two trips through storage, in "
        f"{store_ms:.1f} ms and out {fetch_ms:.1f} ms = {store_ms + fetch_ms:.1f} ms per photo "
        f"(load {load_at})")


def run_serve(args, work, backlog, big, bench, engine_cpu, engine_ms):
    data = os.path.join(work, "serve-data")
    env = {
        "GALLERY_DATA_DIR": data,
        "GALLERY_ADMIN_EMAIL": ADMIN_EMAIL,
        "GALLERY_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    for name in SERVICES_ENV:
        env[name] = ""
    tuning = ["--concurrency", str(args.concurrency)]

    def fill(files):
        """Uploads `files` through serve (processed once, untimed), then queues them again."""
        warm = Gallery(args.bin, "serve", env, tuning)
        try:
            warm.wait_ready()
            token = api_token(warm.port)
            ids = upload_all(warm.port, token, files)
            warm.wait_done(len(files))
        finally:
            warm.stop()
        subprocess.run(
            [args.bin, "reprocess", "--all"], env={**os.environ, **env}, check=True,
            stdout=subprocess.DEVNULL,
        )
        return ids

    fill(backlog)
    gallery = Gallery(args.bin, "serve", env, tuning, drain_with=[])
    try:
        seconds, cpu = drain(gallery, len(backlog), [gallery])
        per_photo = report("serve", len(backlog), seconds, cpu, bench, engine_cpu, load(),
                           gallery.busy, args.concurrency)
        report_ceiling("serve", len(backlog), seconds, per_photo, 0.0, load())
        gallery.wait_ready()
        token = api_token(gallery.port)
        stages = Stages(gallery, gallery)
        times, requests, _ = latency(gallery.port, token, args.latency_photo, args.uploads)
        report_latency("serve", times, requests, stages.end(args.uploads), engine_ms,
                       os.path.basename(args.latency_photo), load())
    finally:
        gallery.stop()
    if big:
        shutil.rmtree(data)
        fill(big)
        gallery = Gallery(args.bin, "serve", env, tuning, drain_with=[])
        try:
            drain(gallery, len(big), [gallery])
            say(f"pipeline serve memory: peak RSS {peak_rss_mib(gallery.process.pid):.1f} MiB "
                f"after {len(big)} photos of 50 MP at --concurrency {args.concurrency} "
                f"(load {load()})")
        finally:
            gallery.stop()
    if args.bursts:
        shutil.rmtree(data, ignore_errors=True)
        bursts(args, env, tuning, sorted(set(backlog)))
    shutil.rmtree(data, ignore_errors=True)


def bursts(args, env, tuning, files):
    gallery = Gallery(args.bin, "serve", env, tuning)
    try:
        gallery.wait_ready()
        token = api_token(gallery.port)
        after = []
        for burst in range(args.bursts):
            upload_all(gallery.port, token, files)
            gallery.wait_done(len(files) * (burst + 1))
            time.sleep(args.pause)
            after.append(rss_mib(gallery.process.pid))
        say(f"pipeline serve bursts: RSS after each of {args.bursts} bursts of {len(files)} "
            f"photos, {args.pause:.0f} s apart: {', '.join(f'{mib:.0f}' for mib in after)} MiB; "
            f"peak {peak_rss_mib(gallery.process.pid):.0f} MiB (load {load()})")
    finally:
        gallery.stop()


def clean_services():
    """Empties what the services run leaves: its Redis keys and its queues' jobs."""
    keys = subprocess.run(
        ["redis-cli", "--scan", "--pattern", BENCH_NAME + ":*"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    for start in range(0, len(keys), 500):
        subprocess.run(["redis-cli", "del", *keys[start:start + 500]],
                       check=True, stdout=subprocess.DEVNULL)
    queues = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "messages"],
        capture_output=True, text=True,
    ).stdout.splitlines()
    for line in queues:
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith(BENCH_NAME + ".") and parts[1] != "0":
            subprocess.run(["rabbitmqctl", "-q", "purge_queue", parts[0]],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_s3(kind):
    """Starts the services run's S3 server: the environment that points the gallery at it."""
    support = os.path.dirname(os.path.abspath(__file__))
    if kind == "s3s":
        subprocess.run(["bash", os.path.join(support, "s3-server.sh")], check=True,
                       stdout=subprocess.DEVNULL)
        return {}
    settings = subprocess.run(["bash", os.path.join(support, "garage.sh")], check=True,
                              capture_output=True, text=True).stdout.split()
    return dict(setting.split("=", 1) for setting in settings)


def run_services(args, backlog, big, bench, engine_cpu, engine_ms):
    s3 = start_s3(args.s3)
    say(f"pipeline services s3: {args.s3} on loopback")
    clean_services()
    env = {**SERVICES_ENV, **s3}
    env["GALLERY_ADMIN_EMAIL"] = ADMIN_EMAIL
    env["GALLERY_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    tuning = ["--concurrency", str(args.concurrency)]
    web = Gallery(args.bin, "web", env)
    workers = []
    try:
        web.wait_ready()
        token = api_token(web.port)
        ids = upload_all(web.port, token, backlog)
        stores_before = store_cpu()
        worker = Gallery(args.bin, "worker", env, tuning, drain_with=[web])
        workers.append(worker)
        seconds, cpu = drain(worker, len(backlog), [worker, web])
        stores = store_cpu()
        per_photo = report("services", len(backlog), seconds, cpu, bench, engine_cpu, load(),
                           worker.busy, args.concurrency)
        # The stores share the 2 cores with the engine: what each cost per photo of the drain.
        stores_ms = {store: 1000 * (stores[store] - stores_before[store]) / len(backlog)
                     for store in stores}
        say("pipeline services stores cpu: " + ", ".join(
            f"{store} {ms:.1f} ms/photo" for store, ms in stores_ms.items())
            + f" (load {load()})")
        report_ceiling("services", len(backlog), seconds, per_photo, sum(stores_ms.values()),
                       load())
        stages = Stages(web, worker)
        times, requests, more = latency(web.port, token, args.latency_photo, args.uploads)
        ids += more
        report_latency("services", times, requests, stages.end(args.uploads), engine_ms,
                       os.path.basename(args.latency_photo), load())
        worker.stop()
        delete_all(web.port, token, ids)
        if big:
            ids = upload_all(web.port, token, big)
            worker = Gallery(args.bin, "worker", env, tuning, name="worker (50 MP)",
                             drain_with=[])
            workers.append(worker)
            drain(worker, len(big), [worker])
            say(f"pipeline services memory: worker peak RSS "
                f"{peak_rss_mib(worker.process.pid):.1f} MiB after {len(big)} photos of 50 MP "
                f"at --concurrency {args.concurrency} (load {load()})")
            worker.stop()
            delete_all(web.port, token, ids)
    finally:
        for worker in workers:
            worker.stop()
        web.stop()
        clean_services()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default="target/release/gallery")
    parser.add_argument("--photos", default="target/photos")
    parser.add_argument("--sets", default="real,camera")
    parser.add_argument("--rounds", type=int, default=3,
                        help="each photo is in the backlog this many times")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--modes", default="serve,services")
    parser.add_argument("--latency-photo", default=None,
                        help="default: the first *_12mp.jpg of the camera set")
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--no-memory", action="store_true", help="skip the 50 MP drain")
    parser.add_argument("--bursts", type=int, default=5,
                        help="serve: bursts of uploads to watch memory over; 0 skips them")
    parser.add_argument("--pause", type=float, default=12.0,
                        help="seconds between bursts")
    parser.add_argument("--s3", choices=["garage", "s3s"], default="garage",
                        help="the services run's S3 server")
    args = parser.parse_args()
    args.bin = os.path.abspath(args.bin)
    sets = [os.path.join(args.photos, name) for name in args.sets.split(",")]
    files = [path for folder in sets for path in photos_in(folder)]
    backlog = files * args.rounds
    camera = photos_in(os.path.join(args.photos, "camera"))
    if args.latency_photo is None:
        args.latency_photo = next(p for p in camera if p.endswith("_12mp.jpg"))
    big = [] if args.no_memory else [p for p in camera if p.endswith("_50mp.jpg")] * args.rounds

    work = tempfile.mkdtemp(prefix="pipeline-bench-")
    try:
        folder = link_dir(work, "backlog", backlog)
        single = link_dir(work, "single", [args.latency_photo] * args.uploads)
        for mode in args.modes.split(","):
            # The engine again before each mode: the ratio is of figures taken side by side.
            rate, _, cpu = run_bench(args.bin, folder, args.concurrency)
            engine_cpu = 1000 * cpu / len(backlog)
            say(f"pipeline {mode} bench: {len(backlog)} photos ({args.sets} x{args.rounds}), "
                f"gallery bench --threads {args.concurrency}: {rate:.2f} img/s, "
                f"{engine_cpu:.1f} ms CPU/photo (load {load()})")
            _, seconds, _ = run_bench(args.bin, single, 1)
            engine_ms = 1000 * seconds / args.uploads
            if mode == "serve":
                run_serve(args, work, backlog, big, rate, engine_cpu, engine_ms)
            elif mode == "services":
                run_services(args, backlog, big, rate, engine_cpu, engine_ms)
            else:
                raise SystemExit(f"unknown mode {mode} (serve, services)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
