"""Real services in pods, from Debian's own packages: Redis, PostgreSQL and nginx.

One root filesystem holds all three (debootstrap, built once and cached); each pod gets its own
copy. Each service runs as it does in production: Redis as `redis`, PostgreSQL as `postgres`, nginx's
master as root and its workers as `www-data`. `pod_args(service, ...)` gives pod_create's arguments.
The clients that keep requests in flight against them are in workloads/redis_client.py and here.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
from typing import Any, Dict, List, Optional, Tuple

from workloads.clients import RequestClient, Worker
from workloads.rootfs import build_debian_rootfs

CACHE = "/var/cache/autopod-lab/services-rootfs"
PACKAGES = "redis-server,postgresql,nginx-light,procps"
STAMP = ".autopod-services-v2"
PG_DATA = "/var/lib/postgresql/15/main"
PAGES = 24  # static pages nginx serves, of different sizes
PORTS = {"redis": 6379, "postgres": 5432, "nginx": 80}
COMMANDS = {
    "redis": (["/usr/bin/redis-server", "--bind", "0.0.0.0", "--port", "6379", "--protected-mode", "no",
               "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis", "--daemonize", "no",
               "--logfile", ""], "redis"),
    "postgres": (["/usr/lib/postgresql/15/bin/postgres", "-D", PG_DATA,
                  "-c", "config_file=/etc/postgresql/15/main/postgresql.conf"], "postgres"),
    "nginx": (["/usr/sbin/nginx", "-g", "daemon off; error_log stderr;"], None),
}
# Trimmed as container images are: documentation, locales, package caches, and PostgreSQL's JIT (LLVM,
# 130 MB), which the pods turn off.
_TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale",
         "usr/share/info")
_NGINX_CONF = """# long-lived keep-alive connections, as behind a load balancer
keepalive_requests 100000000;
keepalive_timeout 3600s;
access_log off;
"""
_POSTGRES_CONF = """
listen_addresses = '*'
ssl = off
jit = off
shared_buffers = 32MB
unix_socket_directories = '/tmp'
external_pid_file = ''
"""


def page_body(number: int) -> bytes:
    """The content of page `number`: deterministic, 1 KiB to about 180 KiB."""
    block = hashlib.sha256(b"autopod page %d" % number).hexdigest().encode()
    return (block * (16 + number * 90))[:1024 + number * 7680]


def _replace(path: str, old: str, new: str) -> None:
    with open(path) as handle:
        text = handle.read()
    with open(path, "w") as handle:
        handle.write(text.replace(old, new))


def _configure(root: str) -> None:
    for path in _TRIM:
        shutil.rmtree(os.path.join(root, path), ignore_errors=True)
    lib = os.path.join(root, "usr/lib/x86_64-linux-gnu")
    for name in os.listdir(lib) if os.path.isdir(lib) else []:
        if name.startswith(("libLLVM", "libz3")):
            os.unlink(os.path.join(lib, name))
    for name in ("llvmjit.so", "llvmjit_types.bc"):
        path = os.path.join(root, "usr/lib/postgresql/15/lib", name)
        if os.path.exists(path):
            os.unlink(path)
    with open(os.path.join(root, "etc/postgresql/15/main/conf.d/autopod.conf"), "w") as conf:
        conf.write(_POSTGRES_CONF)
    with open(os.path.join(root, "etc/postgresql/15/main/pg_hba.conf"), "a") as hba:
        hba.write("host all all 0.0.0.0/0 trust\n")
    with open(os.path.join(root, "etc/nginx/conf.d/autopod.conf"), "w") as conf:
        conf.write(_NGINX_CONF)
    _replace(os.path.join(root, "etc/nginx/nginx.conf"), "worker_processes auto;", "worker_processes 2;")
    html = os.path.join(root, "var/www/html")
    for number in range(PAGES):
        with open(os.path.join(html, "page-%d.html" % number), "wb") as page:
            page.write(page_body(number))
    open(os.path.join(root, STAMP), "w").close()


def build_services_rootfs(path: str = CACHE) -> str:
    """The services' root filesystem, built once (about a minute) and reused while its stamp is there."""
    if os.path.exists(os.path.join(path, STAMP)):
        return path
    shutil.rmtree(path, ignore_errors=True)
    build_debian_rootfs(path, PACKAGES)
    _configure(path)
    return path


def pod_args(service: str, name: str, rootfs: str, address: str, bridge: str) -> Dict[str, Any]:
    command, user = COMMANDS[service]
    args: Dict[str, Any] = {"name": name, "rootfs": rootfs, "command": command, "memory_max": "1G",
                            "network": {"address": address, "bridge": bridge}}
    if user:
        args["user"] = user
    return args


# ---------------------------------------------------------------- PostgreSQL


class PostgresWorker(Worker):
    """Each request is one transaction: an INSERT of (worker, sequence), then COMMIT."""

    def open(self) -> None:
        import pg8000.native  # a test dependency (requirements.txt), pure Python
        self.connection = pg8000.native.Connection("postgres", database="postgres", sock=self.client.socket(),
                                                   timeout=120)

    def request(self, sequence: int) -> Tuple[int, int]:
        self.connection.run("BEGIN")
        self.connection.run("INSERT INTO ledger (worker, seq) VALUES (:w, :s)", w=self.index, s=sequence)
        self.connection.run("COMMIT")
        return self.index, sequence

    def close(self) -> None:
        self.connection.close()


class PostgresClient(RequestClient):
    """Transactions in flight on several connections; at the end every committed one must be there."""

    worker_class = PostgresWorker

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._setup_done = False
        super().__init__(*args, **kwargs)

    def setup(self) -> "PostgresClient":
        self.workers[0].connection.run("CREATE TABLE IF NOT EXISTS ledger (worker int, seq int, "
                                       "at timestamptz DEFAULT now(), PRIMARY KEY (worker, seq))")
        self.workers[0].connection.run("TRUNCATE ledger")
        return self

    def lost(self) -> List[Tuple[int, int]]:
        import pg8000.native
        reader = pg8000.native.Connection("postgres", database="postgres", sock=self.socket(), timeout=120)
        try:
            present = set(map(tuple, reader.run("SELECT worker, seq FROM ledger")))
        finally:
            reader.close()
        return [pair for worker in self.workers for pair in worker.acknowledged if pair not in present]


# ---------------------------------------------------------------- nginx


class HttpWorker(Worker):
    """HTTP/1.1 keep-alive: many requests on one connection, each reply checked byte for byte."""

    def open(self) -> None:
        self.connection = http.client.HTTPConnection(self.client.address, self.client.port, timeout=120)
        self.connection.sock = self.client.socket()

    def request(self, sequence: int) -> Optional[int]:
        number = (sequence * 7 + self.index) % PAGES
        self.connection.request("GET", "/page-%d.html" % number)
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200 or body != page_body(number):
            raise RuntimeError("page %d: status %d, %d bytes, %s" % (
                number, response.status, len(body), "content differs" if body else "empty"))
        if response.will_close:
            raise RuntimeError("the server closed the keep-alive connection")
        return None

    def close(self) -> None:
        self.connection.close()


class HttpClient(RequestClient):
    worker_class = HttpWorker

    def lost(self) -> List[Any]:
        return []  # nothing is written; every reply was checked as it came
