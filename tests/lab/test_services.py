"""Real services moving between lab hosts while their clients keep requests in flight; nothing mocked.

Redis with writers whose SETs are always in flight, PostgreSQL with transactions committing on several
connections, nginx serving HTTP/1.1 keep-alive clients. Each moves with post-copy and back with
stop-and-copy; afterwards no client saw an error, and every acknowledged write or committed transaction
is there. The soak moves a Redis pod back and forth under load many times.
"""

from __future__ import annotations

import time

import pytest

from lab import topology as topo
from tests.lab import pods

SOAK_MOVES = 8  # two rounds of the strategy pattern; bench/soak.py runs the long soak


def moved_under_load(lab, client, name, source, destination, strategy, definition):
    """One move while the client works; returns the client's longest wait during it (ms)."""
    client.wait_requests(50)
    started = time.monotonic()
    result = pods.move(lab, name, source, destination, strategy=strategy, definition=definition)
    assert result.get("changed") and result["result"] == "moved", "%s: %s" % (result.get("result"), result.get("msg"))
    assert result["strategy"] == strategy
    client.wait_requests(50, timeout=60)
    assert client.errors() == [], client.errors()
    return round(client.longest_wait(started) * 1000), result


# Files owned by each service's own user, which copy storage must bring with their owners and modes.
OWNED = {"redis": ["var/lib/redis"],
         "postgres": ["var/lib/postgresql/15/main", "var/lib/postgresql/15/main/base", "etc/postgresql/15/main/pg_hba.conf"],
         "nginx": ["var/www/html", "var/lib/nginx"]}


@pytest.mark.parametrize("service, offset", [("redis", 40), ("postgres", 41), ("nginx", 42)])
def test_a_service_moves_there_and_back_without_an_error_or_a_lost_write(lab, clean, service, offset):
    name = "svc-" + service
    definition = pods.place_service(lab, "lab1", service, name, offset)["pod"]["definition"]
    client = pods.service_client(service, offset)
    rootfs = definition["rootfs"]
    try:
        waits = []
        for source, destination, strategy in (("lab1", "lab2", "post-copy"), ("lab2", "lab1", "stop-and-copy")):
            before = pods.identities(lab, source, name)
            owners = pods.ownership(lab, source, rootfs, OWNED[service])
            wait, result = moved_under_load(lab, client, name, source, destination, strategy, definition)
            waits.append((strategy, wait, result["downtime_ms"]))
            assert pods.running_on(lab, name, ["lab1", "lab2"]) == [destination]
            # the same processes as the same users, groups and capabilities; files with their owners
            assert pods.identities(lab, destination, name) == before
            assert pods.ownership(lab, destination, rootfs, OWNED[service]) == owners
        client.stop()
        assert client.errors() == [], client.errors()
        assert client.lost() == [], "acknowledged writes or committed transactions are missing"
        if service == "postgres":
            assert pods.pg_amcheck(topo.pod_ip(offset)).strip() == "", "pg_amcheck found corruption"
        report = client.report()
        print("%s: %s; longest waits per move (strategy, client ms, frozen ms): %s"
              % (service, report, waits))
    finally:
        client.close()


def test_soak_a_request_response_pod_moves_back_and_forth_under_load(lab, clean):
    definition = pods.place_service(lab, "lab1", "redis", "svc-soak", 43)["pod"]["definition"]
    client = pods.service_client("redis", 43)
    try:
        waits, hosts = [], ["lab1", "lab2"]
        for number in range(SOAK_MOVES):
            source, destination = hosts[number % 2], hosts[(number + 1) % 2]
            strategy = "post-copy" if number % 4 < 3 else "stop-and-copy"
            wait, _result = moved_under_load(lab, client, "svc-soak", source, destination, strategy, definition)
            waits.append(wait)
        client.stop()
        assert client.errors() == [] and client.lost() == []
        waits.sort()
        print("soak: %d moves, %s; client's longest wait per move: p50 %d ms, max %d ms"
              % (SOAK_MOVES, client.report(), waits[len(waits) // 2], waits[-1]))
    finally:
        client.close()
