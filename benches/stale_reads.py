"""A write at ONE through one node, then at once a read at ONE through
another: how often does the read miss the write? (Issue 18's symptom;
target at most 0.5%.)

    .venv/bin/python benches/stale_reads.py 127.0.61.1 127.0.61.2 [keys]

Each session is pinned to its node (no token-aware routing), so the write's
coordinator and the read's are always different nodes; the keyspace has
RF 3 over the cluster.
"""

import sys
import uuid

from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import WhiteListRoundRobinPolicy


def session_on(host):
    profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([host]))
    cluster = Cluster([host], execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    return cluster, cluster.connect()


def main():
    writer_host, reader_host = sys.argv[1], sys.argv[2]
    keys = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    wc, writer = session_on(writer_host)
    rc, reader = session_on(reader_host)
    writer.execute(
        "CREATE KEYSPACE IF NOT EXISTS stale WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 3}"
    )
    writer.execute("CREATE TABLE IF NOT EXISTS stale.kv (k uuid PRIMARY KEY, v int)")
    writer.cluster.control_connection.wait_for_schema_agreement()
    insert = writer.prepare("INSERT INTO stale.kv (k, v) VALUES (?, ?)")
    insert.consistency_level = ConsistencyLevel.ONE
    select = reader.prepare("SELECT v FROM stale.kv WHERE k = ?")
    select.consistency_level = ConsistencyLevel.ONE
    stale = 0
    for i in range(keys):
        k = uuid.uuid4()
        writer.execute(insert, (k, i))
        if reader.execute(select, (k,)).one() is None:
            stale += 1
        if (i + 1) % 250 == 0:
            print(f"  {i + 1}/{keys} keys, {stale} stale", file=sys.stderr)
    print(f"stale reads: {stale} of {keys} ({100.0 * stale / keys:.2f}%)")
    wc.shutdown()
    rc.shutdown()


if __name__ == "__main__":
    main()
