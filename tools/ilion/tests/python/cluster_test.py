"""Drives a real three-node Ilion cluster with the real Python cassandra-driver.

Usage: cluster_test.py ADDRESSES MODE [ARGS...]
  ADDRESSES is a comma-separated list of node addresses (CQL port 9042);
  requests go only to these (token-aware among them), except in routing.
  MODE=schema              DDL on the second node: keyspaces ks (RF 3) and
                           ks1 (RF 1); the driver's schema agreement check
                           passes and every node shows the table within 5 s
  MODE=routing POLICY N    N prepared writes to ks1.t at ONE with POLICY, after
                           a warm-up; prints misrouted=M (writes the nodes
                           counted as coordinated by a non-replica)
                           (token-aware, the driver's default, or round-robin)
  MODE=write CL FROM TO    writes keys FROM..TO to ks.t at CL
  MODE=read CL FROM TO     reads keys FROM..TO at CL; each must have its value
  MODE=unavailable CL      a write at CL must fail with Unavailable; prints
                           required=N alive=M
  MODE=refused CL          through the first address only, a write at CL must
                           fail (Unavailable or a timeout); prints which
  MODE=scan CL COUNT       SELECT * in pages of 7 at CL returns keys 0..COUNT once
                           each, count(*) agrees, and paging continues on
                           another coordinator (first page from the first
                           address, the rest from the second)
  MODE=timeout CL          a write at CL must fail with WriteTimeout; prints
                           received=N required=M
  MODE=ddl CQL             runs one DDL statement
  MODE=has-table KS TABLE WAIT
                           through the first address only, waits up to WAIT
                           seconds until system_schema shows KS.TABLE
  MODE=count-one FROM TO WAIT
                           through the first address only, at ONE, waits up
                           to WAIT seconds until all keys FROM..TO are there;
                           prints found=N
  MODE=shapes              through the first address only, at QUORUM,
                           prepared list updates that read first, IN over 3
                           and 12 partitions with a clustering IN; prints
                           "shapes ok"
Exits non-zero with a message on the first failed check.
"""

import sys
import time

from cassandra import ConsistencyLevel, InvalidRequest, OperationTimedOut, Unavailable, WriteTimeout, ReadTimeout
from cassandra.cluster import Cluster, ExecutionProfile, EXEC_PROFILE_DEFAULT, NoHostAvailable
from cassandra.policies import (DCAwareRoundRobinPolicy, FallthroughRetryPolicy, RoundRobinPolicy,
                                TokenAwarePolicy, WhiteListRoundRobinPolicy)


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def expect(condition, message):
    if not condition:
        fail(message)


def connect(addresses, policy=None):
    # Token-aware, but only through the nodes named (a partition test must
    # not reach the other side).
    policy = policy or TokenAwarePolicy(WhiteListRoundRobinPolicy(addresses))
    profile = ExecutionProfile(load_balancing_policy=policy, request_timeout=20,
                               retry_policy=FallthroughRetryPolicy())
    cluster = Cluster(addresses, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                      connect_timeout=10, control_connection_timeout=10)
    return cluster, cluster.connect()


def only(address):
    return connect([address], WhiteListRoundRobinPolicy([address]))


def level(name):
    return getattr(ConsistencyLevel, name)


def schema(addresses):
    cluster, session = connect([addresses[1]], TokenAwarePolicy(DCAwareRoundRobinPolicy()))
    hosts = sorted(h.address for h in cluster.metadata.all_hosts())
    expect(hosts == sorted(addresses), f"the driver found {hosts}, expected {addresses}")
    started = time.time()
    session.execute("CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}")
    session.execute("CREATE TABLE ks.t (k int PRIMARY KEY, v text)")
    session.execute("CREATE KEYSPACE ks1 WITH replication = {'class': 'NetworkTopologyStrategy', 'datacenter1': 1}")
    session.execute("CREATE TABLE ks1.t (k int PRIMARY KEY, v text)")
    expect(cluster.control_connection.wait_for_schema_agreement(wait_time=10),
           "the driver's schema agreement check did not pass")
    agreed = time.time() - started
    for address in addresses:
        node_cluster, node_session = only(address)
        while True:
            rows = list(node_session.execute(
                "SELECT table_name FROM system_schema.tables WHERE keyspace_name = 'ks1'"))
            if [r.table_name for r in rows] == ["t"]:
                break
            expect(time.time() - started < 5, f"{address} does not show ks1.t 5 s after the DDL")
            time.sleep(0.1)
        # Every node's view of every version (gossip) agrees soon after.
        while True:
            versions = {r.schema_version for r in node_session.execute("SELECT schema_version FROM system.peers")}
            local = node_session.execute("SELECT schema_version FROM system.local").one().schema_version
            if versions == {local}:
                break
            expect(time.time() - started < 5,
                   f"{address}: peers' schema versions {versions} still differ from its own {local} 5 s after the DDL")
            time.sleep(0.1)
        node_cluster.shutdown()
    print(f"schema agreed after {agreed:.2f}s, visible everywhere after {time.time() - started:.2f}s")
    cluster.shutdown()


def non_replica_total(addresses):
    """The sum over the nodes of requests coordinated by a non-replica."""
    import urllib.request
    total = 0.0
    for address in addresses:
        with urllib.request.urlopen(f"http://{address}:9180/metrics", timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("ilion_coordinator_non_replica_requests_total "):
                    total += float(line.split()[1])
    return total


def routing(addresses, policy_name, count):
    policy = {"token-aware": TokenAwarePolicy(DCAwareRoundRobinPolicy()),
              "round-robin": RoundRobinPolicy()}[policy_name]
    cluster, session = connect(addresses, policy)
    insert = session.prepare("INSERT INTO ks1.t (k, v) VALUES (?, ?)")
    insert.consistency_level = ConsistencyLevel.ONE
    # Warm up: the driver's pools and token map settle after connecting.
    for k in range(count, count + 50):
        session.execute(insert, (k, "warm"))
    time.sleep(1)
    before = non_replica_total(addresses)
    for k in range(count):
        session.execute(insert, (k, f"r{k}"))
    misrouted = non_replica_total(addresses) - before
    print(f"{count} writes with {policy_name}: misrouted={int(misrouted)}")
    cluster.shutdown()


def write(addresses, cl, first, last):
    cluster, session = connect(addresses)
    insert = session.prepare("INSERT INTO ks.t (k, v) VALUES (?, ?)")
    insert.consistency_level = level(cl)
    for k in range(first, last):
        session.execute(insert, (k, f"v{k}"))
    print(f"wrote {last - first} at {cl}")
    cluster.shutdown()


def read(addresses, cl, first, last):
    cluster, session = connect(addresses)
    select = session.prepare("SELECT v FROM ks.t WHERE k = ?")
    select.consistency_level = level(cl)
    for k in range(first, last):
        row = session.execute(select, (k,)).one()
        expect(row is not None and row.v == f"v{k}", f"key {k} at {cl}: {row}")
    print(f"read {last - first} at {cl}")
    cluster.shutdown()


def cause(error):
    """The server's error inside a NoHostAvailable, or the error itself."""
    if isinstance(error, NoHostAvailable) and error.errors:
        return next(iter(error.errors.values()))
    return error


def failed_write(session, cl, key, expected):
    """A write at CL that must fail with one of `expected`; the error."""
    insert = session.prepare("INSERT INTO ks.t (k, v) VALUES (?, ?)")
    insert.consistency_level = level(cl)
    try:
        session.execute(insert, (key, "never"), timeout=10)
    except Exception as error:
        error = cause(error)
        expect(isinstance(error, expected), f"expected {expected}, got {error!r}")
        return error
    fail(f"a write at {cl} succeeded")


def unavailable(addresses, cl):
    cluster, session = connect(addresses)
    error = failed_write(session, cl, -1, Unavailable)
    print(f"required={error.required_replicas} alive={error.alive_replicas}")
    cluster.shutdown()


def refused(addresses, cl):
    cluster, session = only(addresses[0])
    error = failed_write(session, cl, -2, (Unavailable, WriteTimeout, OperationTimedOut))
    print(type(error).__name__)
    cluster.shutdown()


def scan(addresses, cl, count):
    from cassandra.query import SimpleStatement
    cluster, session = connect(addresses)
    query = SimpleStatement("SELECT k, v FROM ks.t", fetch_size=7, consistency_level=level(cl))
    keys = [row.k for row in session.execute(query) if row.k >= 0]
    expect(sorted(keys) == list(range(count)), f"scan at {cl} returned {len(keys)} keys: {sorted(keys)[:20]}...")
    total = session.execute(SimpleStatement("SELECT count(*) FROM ks.t WHERE token(k) >= -9223372036854775807",
                                            consistency_level=level(cl))).one().count
    expect(total >= count, f"count(*) at {cl} is {total}, expected at least {count}")
    cluster.shutdown()
    # A paging state from one coordinator continues on another.
    first_cluster, first = only(addresses[0])
    page = first.execute(SimpleStatement("SELECT k FROM ks.t", fetch_size=10, consistency_level=level(cl)))
    seen = [row.k for row in page.current_rows]
    state = page.paging_state
    first_cluster.shutdown()
    second_cluster, second = only(addresses[1])
    rest = second.execute(SimpleStatement("SELECT k FROM ks.t", fetch_size=10, consistency_level=level(cl)),
                          paging_state=state)
    seen += [row.k for row in rest]
    seen = [k for k in seen if k >= 0]
    expect(sorted(seen) == list(range(count)) and len(seen) == count,
           f"paging across coordinators saw {len(seen)} keys, {len(set(seen))} distinct")
    second_cluster.shutdown()
    print(f"scanned {count} at {cl}")


def timeout(addresses, cl):
    cluster, session = connect(addresses)
    error = failed_write(session, cl, -3, WriteTimeout)
    print(f"received={error.received_responses} required={error.required_responses}")
    cluster.shutdown()


def ddl(addresses, cql):
    cluster, session = connect(addresses)
    session.execute(cql)
    print("done")
    cluster.shutdown()


def has_table(addresses, keyspace, table, wait):
    cluster, session = only(addresses[0])
    started = time.time()
    while True:
        rows = session.execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))
        if table in [r.table_name for r in rows]:
            break
        expect(time.time() - started < wait, f"{addresses[0]} does not show {keyspace}.{table} after {wait} s")
        time.sleep(0.1)
    print(f"visible after {time.time() - started:.1f}s")
    cluster.shutdown()


def count_one(addresses, first, last, wait):
    cluster, session = only(addresses[0])
    select = session.prepare("SELECT v FROM ks.t WHERE k = ?")
    select.consistency_level = ConsistencyLevel.ONE
    started = time.time()
    while True:
        found = sum(1 for k in range(first, last) if session.execute(select, (k,)).one() is not None)
        if found == last - first or time.time() - started > wait:
            break
        time.sleep(0.5)
    print(f"found={found} after {time.time() - started:.1f}s")
    cluster.shutdown()


def shapes(addresses):
    """Prepared single-partition statements of every shape the coordinator
    runs on a task (reads before writes, several reads, more reads than a
    task does before handing over to a thread), through a node that is not
    always a replica, at QUORUM."""
    cluster, session = only(addresses[0])
    session.execute("CREATE KEYSPACE IF NOT EXISTS shapes WITH replication = "
                    "{'class': 'SimpleStrategy', 'replication_factor': 3}")
    session.execute("CREATE TABLE IF NOT EXISTS shapes.l (k int PRIMARY KEY, items list<int>)")
    session.execute("CREATE TABLE IF NOT EXISTS shapes.w (k int, c int, v int, PRIMARY KEY (k, c))")
    cluster.control_connection.wait_for_schema_agreement()
    quorum = ConsistencyLevel.QUORUM

    def prepared(cql):
        statement = session.prepare(cql)
        statement.consistency_level = quorum
        return statement

    insert_list = prepared("INSERT INTO shapes.l (k, items) VALUES (?, ?)")
    set_index = prepared("UPDATE shapes.l SET items[1] = 20 WHERE k = ?")
    remove = prepared("UPDATE shapes.l SET items = items - ? WHERE k = ?")
    get_list = prepared("SELECT items FROM shapes.l WHERE k = ?")
    for k in range(20):
        session.execute(insert_list, (k, [1, 2, 3]))
        session.execute(set_index, (k,))
        session.execute(remove, ([1], k))
        items = session.execute(get_list, (k,)).one().items
        expect(items == [20, 3], f"list of key {k} is {items}, expected [20, 3]")
    try:
        session.execute(prepared("UPDATE shapes.l SET items[5] = 9 WHERE k = ?"), (0,))
        fail("an index past the list's end was accepted")
    except InvalidRequest as error:
        expect("index" in str(error).lower(), f"unexpected error: {error}")

    insert = prepared("INSERT INTO shapes.w (k, c, v) VALUES (?, ?, ?)")
    for k in range(12):
        for c in range(4):
            session.execute(insert, (k, c, k * 10 + c))
    for keys in ([0, 1, 2], list(range(12))):
        marks = ", ".join("?" for _ in keys)
        select = prepared(f"SELECT k, c, v FROM shapes.w WHERE k IN ({marks}) AND c IN (1, 3)")
        rows = sorted((r.k, r.c, r.v) for r in session.execute(select, keys))
        wanted = sorted((k, c, k * 10 + c) for k in keys for c in (1, 3))
        expect(rows == wanted, f"IN over {len(keys)} keys read {rows}")
    # A prepared filtering scan: its key marker is no partition key, so it
    # scans token ranges (on a thread, not on the statement's task).
    scan = prepared("SELECT k, c FROM shapes.w WHERE k > ? ALLOW FILTERING")
    rows = sorted((r.k, r.c) for r in session.execute(scan, (5,)))
    wanted = sorted((k, c) for k in range(6, 12) for c in range(4))
    expect(rows == wanted, f"filtering scan read {len(rows)} rows, expected {len(wanted)}")
    print("shapes ok")
    cluster.shutdown()


def main():
    addresses = sys.argv[1].split(",")
    mode, args = sys.argv[2], sys.argv[3:]
    if mode == "schema":
        schema(addresses)
    elif mode == "routing":
        routing(addresses, args[0], int(args[1]))
    elif mode == "write":
        write(addresses, args[0], int(args[1]), int(args[2]))
    elif mode == "read":
        read(addresses, args[0], int(args[1]), int(args[2]))
    elif mode == "unavailable":
        unavailable(addresses, args[0])
    elif mode == "refused":
        refused(addresses, args[0])
    elif mode == "scan":
        scan(addresses, args[0], int(args[1]))
    elif mode == "timeout":
        timeout(addresses, args[0])
    elif mode == "ddl":
        ddl(addresses, args[0])
    elif mode == "has-table":
        has_table(addresses, args[0], args[1], float(args[2]))
    elif mode == "shapes":
        shapes(addresses)
    elif mode == "count-one":
        count_one(addresses, int(args[0]), int(args[1]), float(args[2]))
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
