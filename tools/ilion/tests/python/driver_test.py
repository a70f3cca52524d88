"""Drives a real Ilion node with the real Python cassandra-driver.

Usage: driver_test.py PORT MODE
  MODE=full        schema, types, paging, errors, TTL, batches, deletes
  MODE=write       writes rows for the durability test (prints the count)
  MODE=read COUNT  checks that COUNT acknowledged rows are there
  MODE=auth        PasswordAuthenticator: logins, roles, who may do what
  MODE=alter       ALTER TABLE / ALTER TYPE, filtering, duration literals
  MODE=query CQL    prints the rows of one query, values joined by |
  MODE=timeouts    WriteTimeout and ReadTimeout (node started with 1 ms timeouts)
Exits non-zero with a message on the first failed check.
"""

import datetime
import json
import decimal
import ipaddress
import sys
import time
import uuid

from cassandra import AlreadyExists, AuthenticationFailed, DriverException, InvalidRequest, Unauthorized, Unavailable, ConsistencyLevel
from cassandra import ReadTimeout, WriteTimeout, WriteType
from cassandra.util import Duration
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, ExecutionProfile, EXEC_PROFILE_DEFAULT, NoHostAvailable
from cassandra.policies import FallthroughRetryPolicy, RoundRobinPolicy
from cassandra.protocol import SyntaxException
from cassandra.query import BatchStatement, BatchType, SimpleStatement


def connect(port, user=None, password=None):
    # Fall-through retries: errors reach the test as the server sent them.
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=20,
                               retry_policy=FallthroughRetryPolicy())
    auth = PlainTextAuthProvider(username=user, password=password) if user is not None else None
    cluster = Cluster(["127.0.0.1"], port=port, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                      connect_timeout=10, control_connection_timeout=10, auth_provider=auth)
    return cluster, cluster.connect()


def login_fails(port, user, password, fragment):
    try:
        cluster, _ = connect(port, user, password)
        cluster.shutdown()
    except NoHostAvailable as error:
        causes = list(error.errors.values())
        expect(any(isinstance(c, AuthenticationFailed) and fragment in str(c) for c in causes),
               f"login as {user!r} should fail with {fragment!r}, got {causes}")
        return
    raise AssertionError(f"login as {user!r} with a wrong password must fail")


def auth(port):
    # No credentials at all: the node asks for them and the driver gives up.
    try:
        cluster, _ = connect(port)
        cluster.shutdown()
        raise AssertionError("a connection without credentials must be refused")
    except NoHostAvailable as error:
        expect("requires authentication" in str(error), f"no credentials: {error}")
    login_fails(port, "cassandra", "wrong", "incorrect")
    login_fails(port, "nobody", "cassandra", "incorrect")
    admin_cluster, admin = connect(port, "cassandra", "cassandra")
    expect(admin_cluster.protocol_version == 5, f"protocol v{admin_cluster.protocol_version}")
    admin.execute("CREATE ROLE alice WITH PASSWORD = 'wonderland' AND LOGIN = true")
    admin.execute("CREATE ROLE IF NOT EXISTS alice WITH PASSWORD = 'other' AND LOGIN = true")
    expect_error(InvalidRequest, admin, "CREATE ROLE alice WITH LOGIN = true", "already exists")
    admin.execute("CREATE USER bob WITH PASSWORD 'builder' NOSUPERUSER")
    roles = {r.role: (r.super, r.login) for r in admin.execute("LIST ROLES")}
    expect(roles == {"alice": (False, True), "bob": (False, True), "cassandra": (True, True)}, f"LIST ROLES: {roles}")
    stored = {r.role: r.salted_hash for r in admin.execute("SELECT role, salted_hash FROM system_auth.roles")}
    expect(stored["alice"].startswith("$2a$10$") and "wonderland" not in stored["alice"], f"hash: {stored['alice']}")

    alice_cluster, alice = connect(port, "alice", "wonderland")
    expect_error(Unauthorized, alice, "CREATE ROLE mallory WITH LOGIN = true", "superuser")
    expect_error(Unauthorized, alice, "DROP ROLE bob", "superuser")
    expect_error(Unauthorized, alice, "ALTER ROLE alice WITH SUPERUSER = true", "own superuser")
    expect([r.role for r in alice.execute("LIST ROLES")] == ["alice"], "a plain role lists only itself")
    alice.execute("ALTER ROLE alice WITH PASSWORD = 'looking-glass'")
    alice_cluster.shutdown()
    login_fails(port, "alice", "wonderland", "incorrect")
    alice_cluster, alice = connect(port, "alice", "looking-glass")
    alice_cluster.shutdown()

    admin.execute("ALTER ROLE bob WITH LOGIN = false")
    login_fails(port, "bob", "builder", "not permitted")
    expect_error(InvalidRequest, admin, "DROP ROLE cassandra", "current login")
    admin.execute("DROP ROLE bob")
    admin.execute("DROP ROLE IF EXISTS bob")
    expect_error(InvalidRequest, admin, "DROP ROLE bob", "doesn't exist")
    expect_error(InvalidRequest, admin, "GRANT SELECT ON ALL KEYSPACES TO alice", "not yet supported")
    admin_cluster.shutdown()
    print("auth: all checks passed")


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def expect_error(kind, session, query, fragment=None):
    try:
        session.execute(query)
    except kind as error:
        if fragment is not None:
            expect(fragment in str(error), f"{query!r}: error {error} lacks {fragment!r}")
        return
    raise AssertionError(f"{query!r} should raise {kind.__name__}")


def full(port):
    cluster, s = connect(port)
    expect(cluster.protocol_version == 5, f"negotiated protocol v{cluster.protocol_version}, expected v5")
    expect("system" in cluster.metadata.keyspaces, "system keyspace missing from metadata")
    # The driver switches LZ4 on by itself when the node offers it (the lz4 package is installed).
    connection = cluster.control_connection._connection
    expect(connection.compressor is not None, "LZ4 compression was not negotiated")
    s.execute("CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
    expect_error(AlreadyExists, s, "CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
    s.execute("USE ks")
    s.execute("""CREATE TABLE types (
        k int PRIMARY KEY, a ascii, b bigint, bl blob, bo boolean, d date, de decimal, do double,
        f float, i inet, si smallint, t text, ti time, ts timestamp, tu timeuuid, tiny tinyint,
        u uuid, vi varint, l frozen<list<int>>, st frozen<set<text>>, m frozen<map<text, int>>)""")
    table = cluster.metadata.keyspaces["ks"].tables["types"]
    expect([c for c in table.columns] == ["k", "a", "b", "bl", "bo", "d", "de", "do", "f", "i", "l", "m", "si", "st", "t", "ti", "tiny", "ts", "tu", "u", "vi"],
           f"columns as Cassandra orders them, got {list(table.columns)}")
    expect(table.columns["m"].cql_type == "frozen<map<text, int>>", table.columns["m"].cql_type)
    values = dict(
        a="ascii", b=-2**62, bl=b"\x00\xffblob", bo=True, d=datetime.date(2024, 2, 29),
        de=decimal.Decimal("-12.345"), do=2.5, f=1.5, i=ipaddress.ip_address("10.0.0.7"), si=-300,
        t="καλημέρα", ti=datetime.time(13, 14, 15, 123456), ts=datetime.datetime(2024, 5, 1, 12, 30, 0, 123000),
        tu=uuid.uuid1(), tiny=-7, u=uuid.uuid4(), vi=2**70, l=[3, 1, 2], st={"b", "a"}, m={"x": 1, "y": -2},
    )
    names = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    s.execute(f"INSERT INTO types (k, {names}) VALUES (%s, {marks})", [1] + list(values.values()))
    row = s.execute("SELECT * FROM types WHERE k = 1").one()
    for name, value in values.items():
        got = getattr(row, name)
        if name == "d":
            got = got.date()
        if name == "ti":
            got = datetime.time(got.hour, got.minute, got.second, got.nanosecond // 1000)
        if name == "i":
            got = ipaddress.ip_address(got)
        if name in ("l",):
            got = list(got)
        if name in ("st",):
            got = set(got)
        if name in ("m",):
            got = dict(got)
        expect(got == value, f"column {name}: wrote {value!r}, read {got!r}")
    s.execute("INSERT INTO types (k, t) VALUES (2, null)")
    row = s.execute("SELECT k, t FROM types WHERE k = 2").one()
    expect(row is not None and row.t is None, f"row with only a key must exist, got {row}")

    # Clustering, ordering and paging.
    s.execute("CREATE TABLE events (p text, c int, v text, PRIMARY KEY (p, c)) WITH CLUSTERING ORDER BY (c DESC)")
    for c in range(1000):
        s.execute("INSERT INTO events (p, c, v) VALUES (%s, %s, %s)", ("a", c, f"v{c}"))
    rows = list(s.execute(SimpleStatement("SELECT c FROM events WHERE p = 'a'", fetch_size=100)))
    expect([r.c for r in rows] == list(range(999, -1, -1)), "paging in DESC clustering order")
    rows = list(s.execute(SimpleStatement("SELECT c FROM events WHERE p = 'a' ORDER BY c ASC", fetch_size=100)))
    expect([r.c for r in rows] == list(range(1000)), "paging in reversed order")
    rows = list(s.execute("SELECT c FROM events WHERE p = 'a' AND c >= 10 AND c < 15"))
    expect([r.c for r in rows] == [14, 13, 12, 11, 10], f"slice on a DESC column: {rows}")
    rows = list(s.execute("SELECT c FROM events WHERE p = 'a' LIMIT 3"))
    expect([r.c for r in rows] == [999, 998, 997], "LIMIT")
    count = s.execute("SELECT count(*) FROM events WHERE p = 'a'").one()[0]
    expect(count == 1000, f"count(*) = {count}")
    # Aggregates see every row, whatever the page size.
    count = s.execute(SimpleStatement("SELECT count(*) FROM events WHERE p = 'a'", fetch_size=100)).one()[0]
    expect(count == 1000, f"count(*) with fetch_size 100 = {count}")
    row = s.execute("SELECT min(c), max(c), sum(c), avg(c), count(v) FROM events WHERE p = 'a'").one()
    expect(tuple(row) == (0, 999, 499500, 499, 1000), f"aggregates: {row}")

    # Full scan with paging across partitions.
    s.execute("CREATE TABLE kv (k int PRIMARY KEY, v int)")
    for k in range(300):
        s.execute("INSERT INTO kv (k, v) VALUES (%s, %s)", (k, k * 2))
    rows = list(s.execute(SimpleStatement("SELECT k, v FROM kv", fetch_size=50)))
    expect(sorted(r.k for r in rows) == list(range(300)), f"full scan returned {len(rows)} rows")
    s.execute("CREATE TABLE grouped (p text, c1 int, c2 int, v int, PRIMARY KEY (p, c1, c2))")
    for p in ("a", "b"):
        for c1 in range(3):
            for c2 in range(4):
                s.execute("INSERT INTO grouped (p, c1, c2, v) VALUES (%s, %s, %s, %s)", (p, c1, c2, c1 * 10 + c2))
    groups = list(s.execute(SimpleStatement("SELECT p, count(*) AS n, sum(v) AS total FROM grouped GROUP BY p", fetch_size=5)))
    expect([(r.p, r.n, r.total) for r in groups] == [("a", 12, 138), ("b", 12, 138)], f"GROUP BY p: {groups}")
    groups = list(s.execute("SELECT c1, max(v) AS top FROM grouped WHERE p = 'a' GROUP BY p, c1"))
    expect([(r.c1, r.top) for r in groups] == [(0, 3), (1, 13), (2, 23)], f"GROUP BY p, c1: {groups}")
    expect_error(InvalidRequest, s, "SELECT count(*) FROM grouped GROUP BY c1", "PRIMARY KEY")
    row = s.execute(SimpleStatement("SELECT count(*), sum(v), max(k) FROM kv", fetch_size=7)).one()
    expect(tuple(row) == (300, sum(range(0, 600, 2)), 299), f"aggregates over a scan: {row}")
    expect(all(r.v == 2 * r.k for r in rows), "full scan values")

    # Deletes, batches, TTL.
    s.execute("DELETE FROM events WHERE p = 'a' AND c = 500")
    s.execute("DELETE FROM events WHERE p = 'a' AND c > 900")
    count = s.execute("SELECT count(*) FROM events WHERE p = 'a'").one()[0]
    expect(count == 1000 - 1 - 99, f"after deletes count(*) = {count}")
    s.execute("BEGIN BATCH INSERT INTO kv (k, v) VALUES (1000, 1); UPDATE kv SET v = 2 WHERE k = 1001; DELETE FROM kv WHERE k = 0; APPLY BATCH")
    expect(s.execute("SELECT v FROM kv WHERE k = 1001").one().v == 2, "batch update")
    expect(s.execute("SELECT v FROM kv WHERE k = 0").one() is None, "batch delete")
    s.execute("INSERT INTO kv (k, v) VALUES (5000, 1) USING TTL 1")
    expect(s.execute("SELECT v FROM kv WHERE k = 5000").one() is not None, "TTL row before expiry")
    time.sleep(2.2)
    expect(s.execute("SELECT v FROM kv WHERE k = 5000").one() is None, "TTL row after expiry")

    # Errors drivers act on.
    expect_error(InvalidRequest, s, "SELECT * FROM nope")
    expect_error(SyntaxException, s, "SELEC * FROM kv", "line 1")
    expect_error(InvalidRequest, s, "SELECT * FROM kv WHERE v = 3", "ALLOW FILTERING")
    expect_error(InvalidRequest, s, "INSERT INTO kv (k, v) VALUES ('x', 1)", "Invalid")
    s.execute("CREATE KEYSPACE rf3 WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}")
    s.execute("CREATE TABLE rf3.t (k int PRIMARY KEY, v int)")
    s.execute(SimpleStatement("INSERT INTO rf3.t (k, v) VALUES (1, 1)", consistency_level=ConsistencyLevel.ONE))
    try:
        s.execute(SimpleStatement("INSERT INTO rf3.t (k, v) VALUES (1, 1)", consistency_level=ConsistencyLevel.QUORUM))
        raise AssertionError("QUORUM with RF 3 on one node must be Unavailable")
    except Unavailable as error:
        expect(error.required_replicas == 2 and error.alive_replicas == 1, f"counts: {error}")

    # Prepared statements: positional, named, bind markers in USING and LIMIT,
    # and partition-key indexes for token-aware routing.
    insert = s.prepare("INSERT INTO events (p, c, v) VALUES (?, ?, ?) USING TTL ?")
    expect(insert.routing_key_indexes == [0], f"routing key indexes {insert.routing_key_indexes}")
    for c in range(20):
        s.execute(insert, ("prepared", c, f"p{c}", 3600))
    select = s.prepare("SELECT c, v FROM events WHERE p = ? AND c >= ? LIMIT ?")
    rows = list(s.execute(select, ("prepared", 15, 3)))
    expect([(r.c, r.v) for r in rows] == [(19, "p19"), (18, "p18"), (17, "p17")], f"prepared select: {rows}")
    named = s.prepare("SELECT count(*) FROM events WHERE p = :p")
    expect(s.execute(named, {"p": "prepared"}).one()[0] == 20, "named bind marker")
    paged = s.prepare("SELECT c FROM events WHERE p = ?")
    paged.fetch_size = 7
    rows = list(s.execute(paged, ("prepared",)))
    expect(len(rows) == 20, f"paging a prepared statement: {len(rows)} rows")

    # writetime(), ttl(), DISTINCT, PER PARTITION LIMIT.
    s.execute("INSERT INTO events (p, c, v) VALUES ('w', 1, 'x') USING TIMESTAMP 1234567 AND TTL 5000")
    row = s.execute("SELECT writetime(v) AS wt, ttl(v) FROM events WHERE p = 'w' AND c = 1").one()
    expect(row.wt == 1234567 and 4990 <= row[1] <= 5000, f"writetime/ttl: {row}")
    keys = sorted(r.p for r in s.execute("SELECT DISTINCT p FROM events"))
    expect(keys == ["a", "prepared", "w"], f"DISTINCT: {keys}")
    rows = list(s.execute("SELECT p, c FROM events PER PARTITION LIMIT 2"))
    expect(len(rows) == 2 + 2 + 1, f"PER PARTITION LIMIT: {rows}")
    expect_error(InvalidRequest, s, "SELECT DISTINCT c FROM events", "DISTINCT")

    # INSERT JSON / SELECT JSON.
    s.execute("CREATE TABLE js (k int PRIMARY KEY, name text, score double, u uuid, tags set<text>, m map<text, int>, b blob)")
    document = {"k": 1, "name": "Ada", "score": 9.5, "u": "123e4567-e89b-12d3-a456-426614174000", "tags": ["x", "a"], "m": {"p": 2}, "b": "0xcafe"}
    s.execute("INSERT INTO js JSON %s", (json.dumps(document),))
    back = json.loads(s.execute("SELECT JSON * FROM js WHERE k = 1").one()[0])
    expect(back == dict(document, tags=["a", "x"]), f"JSON round trip: {back}")
    expect_error(InvalidRequest, s, "INSERT INTO js JSON '{\"k\": 2, \"nope\": 1}'", "unrecognized column")

    # Non-frozen collections: element operations, as Cassandra does them.
    s.execute("CREATE TABLE coll (k int PRIMARY KEY, tags set<text>, attrs map<text, int>, events list<text>)")
    s.execute("INSERT INTO coll (k, tags, attrs, events) VALUES (1, {'b', 'a'}, {'x': 1}, ['e1'])")
    s.execute("UPDATE coll SET tags = tags + {'c'}, attrs['y'] = 2, events = events + ['e2'] WHERE k = 1")
    s.execute("UPDATE coll SET events = ['e0'] + events, tags = tags - {'a'} WHERE k = 1")
    s.execute("DELETE attrs['x'] FROM coll WHERE k = 1")
    row = s.execute("SELECT tags, attrs, events FROM coll WHERE k = 1").one()
    expect(set(row.tags) == {"b", "c"} and dict(row.attrs) == {"y": 2} and list(row.events) == ["e0", "e1", "e2"], f"collections: {row}")
    s.execute("UPDATE coll SET tags = {'z'} WHERE k = 1")
    expect(set(s.execute("SELECT tags FROM coll WHERE k = 1").one().tags) == {"z"}, "collection overwrite")
    s.execute(s.prepare("UPDATE coll SET attrs = attrs + ? WHERE k = ?"), ({"p": 9}, 1))
    expect(dict(s.execute("SELECT attrs FROM coll WHERE k = 1").one().attrs) == {"p": 9, "y": 2}, "prepared map add")
    # Lists by index and by value (read before write, as in Cassandra).
    s.execute("UPDATE coll SET events = ['a', 'b', 'c', 'b'] WHERE k = 1")
    s.execute("UPDATE coll SET events[1] = 'B' WHERE k = 1")
    s.execute("DELETE events[0] FROM coll WHERE k = 1")
    expect(list(s.execute("SELECT events FROM coll WHERE k = 1").one().events) == ["B", "c", "b"], "list index set/delete")
    s.execute("UPDATE coll SET events = events - ['b', 'zz'] WHERE k = 1")
    expect(list(s.execute("SELECT events FROM coll WHERE k = 1").one().events) == ["B", "c"], "list removal by value")
    expect_error(InvalidRequest, s, "UPDATE coll SET events[7] = 'x' WHERE k = 1", "out of bound")
    s.execute("UPDATE coll SET tags = null WHERE k = 1")
    expect(s.execute("SELECT tags FROM coll WHERE k = 1").one().tags is None, "collection deleted")

    # The BATCH message, with prepared and simple statements.
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    batch.add(insert, ("batched", 1, "one", 0))
    batch.add(SimpleStatement("INSERT INTO events (p, c, v) VALUES (%s, %s, %s)"), ("batched", 2, "two"))
    batch.add(s.prepare("DELETE FROM events WHERE p = ? AND c = ?"), ("batched", 1))
    s.execute(batch)
    rows = [(r.c, r.v) for r in s.execute("SELECT c, v FROM events WHERE p = 'batched'")]
    expect(rows == [(2, "two")], f"BATCH message: {rows}")

    # IN and multi-column restrictions on clustering columns, paging through IN.
    s.execute("CREATE TABLE grid (p int, a int, b int, v text, PRIMARY KEY (p, a, b))")
    grid_insert = s.prepare("INSERT INTO grid (p, a, b, v) VALUES (?, ?, ?, ?)")
    for p in range(3):
        for a in range(5):
            for b in range(5):
                s.execute(grid_insert, (p, a, b, f"{p}.{a}.{b}"))
    rows = [(r.a, r.b) for r in s.execute("SELECT a, b FROM grid WHERE p = 1 AND a IN (3, 1) AND b = 2")]
    expect(rows == [(1, 2), (3, 2)], f"IN on a clustering column: {rows}")
    rows = [(r.a, r.b) for r in s.execute("SELECT a, b FROM grid WHERE p = 1 AND a IN (1, 3) AND b >= 3 ORDER BY a DESC, b DESC")]
    expect(rows == [(3, 4), (3, 3), (1, 4), (1, 3)], f"IN with a slice, reversed: {rows}")
    rows = [(r.a, r.b) for r in s.execute("SELECT a, b FROM grid WHERE p = 0 AND (a, b) > (3, 3) AND (a, b) <= (4, 1)")]
    expect(rows == [(3, 4), (4, 0), (4, 1)], f"multi-column slice: {rows}")
    rows = [(r.a, r.b) for r in s.execute("SELECT a, b FROM grid WHERE p = 0 AND (a, b) IN ((4, 4), (0, 1), (9, 9))")]
    expect(rows == [(0, 1), (4, 4)], f"multi-column IN: {rows}")
    rows = [(r.a, r.b) for r in s.execute(s.prepare("SELECT a, b FROM grid WHERE p = ? AND (a, b) >= (?, ?) LIMIT 2"), (2, 4, 3))]
    expect(rows == [(4, 3), (4, 4)], f"prepared multi-column slice: {rows}")
    rows = [(r.p, r.a, r.b) for r in s.execute(SimpleStatement("SELECT p, a, b FROM grid WHERE p IN (0, 1, 2)", fetch_size=7))]
    expect(len(rows) == 75 and len(set(rows)) == 75, f"paging through IN: {len(rows)} rows, {len(set(rows))} distinct")
    rows = list(s.execute(SimpleStatement("SELECT p, a, b FROM grid WHERE p IN (0, 2) AND a IN (1, 2) LIMIT 13", fetch_size=4)))
    expect(len(rows) == 13, f"LIMIT across IN pages: {len(rows)}")
    s.execute("DELETE FROM grid WHERE p = 2 AND a IN (0, 4)")
    s.execute("DELETE FROM grid WHERE p = 2 AND a = 1 AND b IN (0, 1, 2)")
    count = s.execute("SELECT count(*) FROM grid WHERE p = 2").one()[0]
    expect(count == 25 - 10 - 3, f"deletes with IN: {count}")
    expect_error(InvalidRequest, s, "SELECT * FROM grid WHERE p = 0 AND (b, a) > (1, 1)", "PRIMARY KEY order")

    # Functions and casts in selections, prepared aggregates.
    row = s.execute("SELECT token(k), CAST(v AS text) AS vt, CAST(v AS double) AS vd, CAST(k AS bigint) FROM kv WHERE k = 7").one()
    from cassandra.metadata import Murmur3Token
    expect(row[0] == Murmur3Token.from_key((7).to_bytes(4, "big", signed=True)).value, f"token(): {row[0]}")
    expect((row.vt, row.vd, row[3]) == ("14", 14.0, 7), f"casts: {row}")
    s.execute("CREATE TABLE times (k int PRIMARY KEY, tu timeuuid, ts timestamp)")
    tu = uuid.uuid1()
    s.execute("INSERT INTO times (k, tu, ts) VALUES (1, %s, '2024-02-29 23:59:59+0000')", (tu,))
    row = s.execute("SELECT toTimestamp(tu) AS t1, toDate(ts) AS d, toUnixTimestamp(ts) AS u FROM times WHERE k = 1").one()
    from cassandra.util import datetime_from_uuid1
    expect(abs((row.t1 - datetime_from_uuid1(tu)).total_seconds()) < 0.002, f"toTimestamp: {row.t1} vs {datetime_from_uuid1(tu)}")
    expect(str(row.d) == "2024-02-29" and row.u == 1709251199000, f"toDate/toUnixTimestamp: {row}")
    agg = s.prepare("SELECT max(c) AS top, count(*) FROM events WHERE p = ?")
    row = s.execute(agg, ("a",)).one()
    expect(row.top == 900 and row[1] == 900, f"prepared aggregate: {row}")

    # User-defined types (frozen), in columns, collections and clustering keys.
    s.execute("CREATE TYPE address (street text, zip int, tags frozen<set<text>>)")
    s.execute("CREATE TYPE IF NOT EXISTS address (street text)")
    expect_error(InvalidRequest, s, "CREATE TYPE address (x int)", "already exists")
    s.execute("CREATE TABLE people (id int, home frozen<address>, past list<frozen<address>>, note text, PRIMARY KEY (id, home))")
    expect_error(InvalidRequest, s, "CREATE TABLE bad (id int PRIMARY KEY, a nosuchtype)", "Unknown type ks.nosuchtype")
    expect_error(InvalidRequest, s, "CREATE TABLE bad (id address PRIMARY KEY)", "PRIMARY KEY")
    expect_error(InvalidRequest, s, "CREATE TABLE bad (id int PRIMARY KEY, a list<address>)", "not allowed inside collections")
    cluster.refresh_schema_metadata()
    udt = cluster.metadata.keyspaces["ks"].user_types["address"]
    expect(udt.field_names == ["street", "zip", "tags"] and udt.field_types == ["text", "int", "frozen<set<text>>"], f"UDT metadata: {udt.field_names} {udt.field_types}")
    expect(cluster.metadata.keyspaces["ks"].tables["people"].columns["home"].cql_type == "frozen<address>", "UDT column type")
    s.execute("INSERT INTO people (id, home, past) VALUES (1, {street: 'Main St', zip: 12345}, [{street: 'Old Rd', zip: 1, tags: {'x'}}])")
    s.execute("INSERT INTO people (id, home, note) VALUES (%s, %s, %s)", (1, {"street": "Elm", "zip": 7}, "dict literal"))
    rows = list(s.execute("SELECT home, past, note FROM people WHERE id = 1"))
    expect([(r.home.street, r.home.zip, r.home.tags) for r in rows] == [("Elm", 7, None), ("Main St", 12345, None)], f"UDT rows: {rows}")
    expect(rows[1].past[0].street == "Old Rd" and set(rows[1].past[0].tags) == {"x"}, f"UDT in a list: {rows[1].past}")
    udt_insert = s.prepare("INSERT INTO people (id, home, note) VALUES (?, ?, ?)")
    class Address:
        def __init__(self, street, zip, tags):
            self.street, self.zip, self.tags = street, zip, tags
    s.execute(udt_insert, (2, Address("Bound Ave", 99, {"b"}), "prepared"))
    row = s.execute("SELECT home FROM people WHERE id = 2").one()
    expect((row.home.street, row.home.zip, set(row.home.tags)) == ("Bound Ave", 99, {"b"}), f"prepared UDT: {row}")
    back = json.loads(s.execute("SELECT JSON home FROM people WHERE id = 2").one()[0])
    expect(back == {"home": {"street": "Bound Ave", "zip": 99, "tags": ["b"]}}, f"UDT as JSON: {back}")
    expect_error(InvalidRequest, s, "INSERT INTO people (id, home) VALUES (3, {nope: 1})", "Unknown field")
    expect_error(InvalidRequest, s, "DROP TYPE address", "still used by table ks.people")
    s.execute("CREATE TYPE unused (a int)")
    s.execute("DROP TYPE unused")
    expect_error(InvalidRequest, s, "DROP TYPE unused", "doesn't exist")

    # 10,000 rows paged 100 at a time, in both clustering orders.
    s.execute("CREATE TABLE big (p int, c int, v text, PRIMARY KEY (p, c))")
    big_insert = s.prepare("INSERT INTO big (p, c, v) VALUES (0, ?, ?)")
    from cassandra.concurrent import execute_concurrent_with_args
    results = execute_concurrent_with_args(s, big_insert, [(c, f"v{c}") for c in range(10000)], concurrency=64)
    expect(all(ok for ok, _ in results), "10,000 inserts")
    forward = [r.c for r in s.execute(SimpleStatement("SELECT c FROM big WHERE p = 0", fetch_size=100))]
    expect(forward == list(range(10000)), f"10,000 rows forward: {len(forward)}")
    backward = [r.c for r in s.execute(SimpleStatement("SELECT c FROM big WHERE p = 0 ORDER BY c DESC", fetch_size=100))]
    expect(backward == list(range(9999, -1, -1)), f"10,000 rows backward: {len(backward)}")
    pages = s.execute(SimpleStatement("SELECT c FROM big WHERE p = 0", fetch_size=100))
    expect(len(pages.current_rows) == 100 and pages.has_more_pages, "pages of 100")

    cluster.refresh_schema_metadata()
    schema = cluster.metadata.keyspaces["ks"].export_as_string()
    expect("CREATE TABLE ks.events" in schema and "CLUSTERING ORDER BY (c DESC)" in schema, schema)
    # export_as_string() re-creates the schema: run it under another name and compare.
    recreated = schema.replace("ks.", "ks_copy.").replace("CREATE KEYSPACE ks ", "CREATE KEYSPACE ks_copy ")
    for statement in [part.strip() for part in recreated.split(";") if part.strip()]:
        s.execute(statement)
    cluster.refresh_schema_metadata()
    copy = cluster.metadata.keyspaces["ks_copy"].export_as_string()
    expect(copy.replace("ks_copy", "ks") == schema, f"export_as_string round trip differs:\n{schema}\n---\n{copy}")
    cluster.shutdown()
    print("python driver: all checks passed")


def alter(port):
    cluster, s = connect(port)
    s.execute("CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
    s.execute("USE ks")
    s.execute("CREATE TABLE t (k int, c int, a text, b int, PRIMARY KEY (k, c))")
    s.execute("INSERT INTO t (k, c, a, b) VALUES (1, 1, 'one', 10)")
    s.execute("UPDATE t SET b = 20 WHERE k = 1 AND c = 2")  # a row with no row marker, only b
    select_all = s.prepare("SELECT * FROM t WHERE k = 1")
    expect([tuple(r) for r in s.execute(select_all)] == [(1, 1, "one", 10), (1, 2, None, 20)], "before ALTER")

    # ADD: new columns are null in old rows, writable, and in SELECT * (prepared too).
    s.execute("ALTER TABLE t ADD d double")
    s.execute("ALTER TABLE t ADD (e text, f set<int>)")
    s.execute("ALTER TABLE t ADD IF NOT EXISTS d double")
    expect_error(InvalidRequest, s, "ALTER TABLE t ADD d int", "already exists")
    s.execute("UPDATE t SET d = 1.5, e = 'new', f = f + {3} WHERE k = 1 AND c = 1")
    cluster.refresh_schema_metadata()
    columns = list(cluster.metadata.keyspaces["ks"].tables["t"].columns)
    expect(columns == ["k", "c", "a", "b", "d", "e", "f"], f"columns after ADD: {columns}")
    rows = [tuple(r) for r in s.execute(select_all)]
    expect(rows == [(1, 1, "one", 10, 1.5, "new", {3}), (1, 2, None, 20, None, None, None)], f"SELECT * after ADD (prepared): {rows}")

    # DROP: the column's data disappears and does not come back when re-added.
    s.execute("ALTER TABLE t DROP b")
    expect_error(InvalidRequest, s, "ALTER TABLE t DROP c", "Cannot drop PRIMARY KEY column c")
    expect_error(InvalidRequest, s, "ALTER TABLE t DROP nope", "was not found")
    s.execute("ALTER TABLE t DROP IF EXISTS nope")
    rows = [tuple(r) for r in s.execute("SELECT * FROM t WHERE k = 1")]
    expect(rows == [(1, 1, "one", 1.5, "new", {3})], f"after DROP b the row holding only b is gone: {rows}")
    s.execute("ALTER TABLE t ADD b int")
    rows = [tuple(r) for r in s.execute("SELECT k, c, b FROM t WHERE k = 1")]
    expect(rows == [(1, 1, None)], f"re-added b shows no old data: {rows}")

    # RENAME (primary key columns only) and WITH options.
    s.execute("ALTER TABLE t RENAME c TO cc")
    expect_error(InvalidRequest, s, "ALTER TABLE t RENAME a TO aa", "non PRIMARY KEY")
    expect([tuple(r) for r in s.execute("SELECT cc, a FROM t WHERE k = 1 AND cc = 1")] == [(1, "one")], "renamed clustering column")
    s.execute("ALTER TABLE t WITH comment = 'altered' AND gc_grace_seconds = 3600 AND compaction = {'class': 'LeveledCompactionStrategy'}")
    cluster.refresh_schema_metadata()
    options = cluster.metadata.keyspaces["ks"].tables["t"].options
    expect(options["comment"] == "altered" and options["gc_grace_seconds"] == 3600, f"options: {options}")
    expect("LeveledCompactionStrategy" in options["compaction"]["class"], f"compaction: {options['compaction']}")
    expect_error(InvalidRequest, s, "ALTER TABLE nosuch ADD x int", "doesn't exist")
    expect_error(Unauthorized, s, "ALTER TABLE system.local ADD x int")

    # ALTER TYPE: add and rename fields; stored values keep their fields.
    s.execute("CREATE TYPE addr (street text, zip int)")
    s.execute("CREATE TABLE homes (id int PRIMARY KEY, a frozen<addr>)")
    s.execute("INSERT INTO homes (id, a) VALUES (1, {street: 'Main', zip: 1})")
    s.execute("ALTER TYPE addr ADD city text")
    s.execute("ALTER TYPE addr RENAME zip TO postcode")
    s.execute("INSERT INTO homes (id, a) VALUES (2, {street: 'Elm', postcode: 2, city: 'Oslo'})")
    cluster.refresh_schema_metadata()
    udt = cluster.metadata.keyspaces["ks"].user_types["addr"]
    expect(udt.field_names == ["street", "postcode", "city"], f"fields after ALTER TYPE: {udt.field_names}")
    rows = {r.id: r.a for r in s.execute("SELECT id, a FROM homes")}
    expect((rows[1].street, rows[1].postcode, rows[1].city) == ("Main", 1, None), f"old UDT value: {rows[1]}")
    expect((rows[2].street, rows[2].postcode, rows[2].city) == ("Elm", 2, "Oslo"), f"new UDT value: {rows[2]}")
    expect_error(InvalidRequest, s, "ALTER TYPE addr ADD city int", "already exists")
    expect_error(InvalidRequest, s, "ALTER TYPE addr RENAME nope TO x", "Unknown field")

    # Filtering with ALLOW FILTERING: slices, IN, CONTAINS, CONTAINS KEY; on
    # regular, clustering and partition key columns; refused without it.
    s.execute("CREATE TABLE f (k int, c int, v int, tags set<text>, attrs map<text, int>, PRIMARY KEY (k, c))")
    ins = s.prepare("INSERT INTO f (k, c, v, tags, attrs) VALUES (?, ?, ?, ?, ?)")
    for k in range(4):
        for c in range(5):
            s.execute(ins, (k, c, k * 10 + c, {f"t{c}", "all"}, {f"a{k}": c}))
    def ks(query, *args):
        return sorted((r.k, r.c) for r in s.execute(query, args or None))
    expect_error(InvalidRequest, s, "SELECT * FROM f WHERE v > 5", "ALLOW FILTERING")
    expect(ks("SELECT k, c FROM f WHERE v > 31 ALLOW FILTERING") == [(3, 2), (3, 3), (3, 4)], "v > 31")
    expect(ks("SELECT k, c FROM f WHERE v >= 12 AND v < 14 ALLOW FILTERING") == [(1, 2), (1, 3)], "12 <= v < 14")
    expect(ks("SELECT k, c FROM f WHERE v IN (0, 22, 99) ALLOW FILTERING") == [(0, 0), (2, 2)], "v IN")
    expect(ks("SELECT k, c FROM f WHERE tags CONTAINS 't4' ALLOW FILTERING") == [(k, 4) for k in range(4)], "CONTAINS")
    expect(ks("SELECT k, c FROM f WHERE attrs CONTAINS KEY 'a2' AND attrs CONTAINS 3 ALLOW FILTERING") == [(2, 3)], "CONTAINS KEY")
    expect(ks("SELECT k, c FROM f WHERE c = 1 ALLOW FILTERING") == [(k, 1) for k in range(4)], "clustering = in a scan")
    expect(ks("SELECT k, c FROM f WHERE k > 2 AND c < 2 ALLOW FILTERING") == [(3, 0), (3, 1)], "partition key slice")
    expect(ks("SELECT k, c FROM f WHERE k = 1 AND v > 12 ALLOW FILTERING") == [(1, 3), (1, 4)], "filter in a partition")
    expect(ks("SELECT k, c FROM f WHERE v > %s ALLOW FILTERING", 32) == [(3, 3), (3, 4)], "bound filter")
    contains = s.prepare("SELECT k, c FROM f WHERE tags CONTAINS ? ALLOW FILTERING")
    expect(sorted((r.k, r.c) for r in s.execute(contains, ["t0"])) == [(k, 0) for k in range(4)], "prepared CONTAINS")
    expect_error(InvalidRequest, s, "SELECT * FROM f WHERE v CONTAINS 1 ALLOW FILTERING", "non-collection")
    expect_error(InvalidRequest, s, "SELECT * FROM f WHERE v != 1 ALLOW FILTERING", "!=")
    paged = [r.v for r in s.execute(SimpleStatement("SELECT v FROM f WHERE v > 5 ALLOW FILTERING", fetch_size=3))]
    expect(sorted(paged) == sorted(k * 10 + c for k in range(4) for c in range(5) if k * 10 + c > 5), f"filtered paging: {paged}")

    # Duration literals.
    s.execute("CREATE TABLE d (k int PRIMARY KEY, v duration)")
    cases = {
        1: ("1h30m", Duration(0, 0, 5400 * 10**9)),
        2: ("-2d", Duration(0, -2, 0)),
        3: ("1y2mo3w4d5h6m7s8ms9us10ns", Duration(14, 25, (5 * 3600 + 6 * 60 + 7) * 10**9 + 8 * 10**6 + 9000 + 10)),
        4: ("P1Y2M3DT4H5M6S", Duration(14, 3, (4 * 3600 + 5 * 60 + 6) * 10**9)),
        5: ("P2W", Duration(0, 14, 0)),
    }
    for k, (literal, _) in cases.items():
        s.execute(f"INSERT INTO d (k, v) VALUES ({k}, {literal})")
    got = {r.k: r.v for r in s.execute("SELECT k, v FROM d")}
    for k, (literal, wanted) in cases.items():
        expect(got[k] == wanted, f"duration {literal}: got {got[k]}, expected {wanted}")
    s.execute("INSERT INTO d (k, v) VALUES (%s, %s)", (6, Duration(1, 2, 3)))
    expect(s.execute("SELECT v FROM d WHERE k = 6").one().v == Duration(1, 2, 3), "bound duration")
    expect_error(SyntaxException, s, "INSERT INTO d (k, v) VALUES (7, 1parsec)")
    cluster.shutdown()
    print("alter: all checks passed")


def timeouts(port):
    cluster, s = connect(port)
    s.execute("CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
    s.execute("CREATE TABLE ks.t (k int, c int, v text, PRIMARY KEY (k, c))")
    # A batch of 3,000 rows cannot be applied within 1 ms: WriteTimeout, BATCH.
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    insert = s.prepare("INSERT INTO ks.t (k, c, v) VALUES (?, ?, ?)")
    for c in range(3000):
        batch.add(insert, (c % 7, c, "x" * 100))
    try:
        s.execute(batch)
        raise AssertionError("a 3,000-row batch within 1 ms should time out")
    except WriteTimeout as error:
        expect(error.write_type == WriteType.UNLOGGED_BATCH, f"write type: {error.write_type}")
        expect(error.required_responses == 1 and error.received_responses == 0, f"counts: {error}")
        expect("timed out" in str(error), str(error))
    # Every row was applied all the same (a timeout is an unknown outcome,
    # and a batch is never cut short by one).
    count = s.execute("SELECT count(*) FROM ks.t WHERE k IN (0, 1, 2, 3, 4, 5, 6)").one()[0]
    expect(count == 3000, f"rows applied by the timed-out batch: {count}")
    # A full scan of a larger table, filtering everything out, takes more than
    # 1 ms however fast the machine: ReadTimeout. (The extra batches time out
    # too, and are applied all the same.)
    for extra in range(1, 10):
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for c in range(3000):
            batch.add(insert, (c % 7, extra * 3000 + c, "x" * 100))
        try:
            s.execute(batch)
        except WriteTimeout:
            pass
    count = s.execute("SELECT count(*) FROM ks.t WHERE k IN (0, 1, 2, 3, 4, 5, 6)").one()[0]
    expect(count == 30000, f"rows before the filtering scan: {count}")
    try:
        list(s.execute("SELECT * FROM ks.t WHERE v = 'none' ALLOW FILTERING"))
        raise AssertionError("a filtering scan within 1 ms should time out")
    except ReadTimeout as error:
        expect(error.required_responses == 1 and error.received_responses == 0, f"counts: {error}")
        expect(not error.data_retrieved, "data_present")
    cluster.shutdown()
    print("timeouts: all checks passed")


def write(port):
    cluster, s = connect(port)
    s.execute("CREATE KEYSPACE IF NOT EXISTS dur WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
    s.execute("CREATE TABLE IF NOT EXISTS dur.t (k int PRIMARY KEY, v text)")
    for k in range(500):
        s.execute("INSERT INTO dur.t (k, v) VALUES (%s, %s)", (k, f"value-{k}"))
    print(500)
    sys.stdout.flush()
    cluster.shutdown()


def read(port, count):
    cluster, s = connect(port)
    rows = {r.k: r.v for r in s.execute(SimpleStatement("SELECT k, v FROM dur.t", fetch_size=100))}
    missing = [k for k in range(count) if rows.get(k) != f"value-{k}"]
    expect(not missing, f"{len(missing)} acknowledged rows lost after SIGKILL, e.g. {missing[:5]}")
    cluster.shutdown()
    print(f"durability: all {count} rows present")


def parity(port):
    """Statements Cassandra accepts that Ilion refused (issue 19)."""
    cluster, s = connect(port)
    s.execute("CREATE KEYSPACE par WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
    # Static columns named by the partition key alone.
    s.execute("CREATE TABLE par.s (k int, c int, s int STATIC, v int, PRIMARY KEY (k, c))")
    s.execute("UPDATE par.s SET s = 1 WHERE k = 1")
    rows = list(s.execute("SELECT k, c, s, v FROM par.s WHERE k = 1"))
    expect([tuple(r) for r in rows] == [(1, None, 1, None)], f"static-only partition reads {rows}")
    update = s.prepare("UPDATE par.s SET s = ? WHERE k = ?")
    s.execute(update, (7, 1))
    s.execute("INSERT INTO par.s (k, c, v) VALUES (1, 1, 10)")
    rows = [tuple(r) for r in s.execute("SELECT k, c, s, v FROM par.s WHERE k = 1")]
    expect(rows == [(1, 1, 7, 10)], f"static beside a row reads {rows}")
    s.execute("INSERT INTO par.s (k, s) VALUES (2, 5)")
    rows = [tuple(r) for r in s.execute("SELECT k, c, s, v FROM par.s WHERE k = 2")]
    expect(rows == [(2, None, 5, None)], f"INSERT of key and static reads {rows}")
    s.execute("DELETE s FROM par.s WHERE k = 2")
    rows = list(s.execute("SELECT k, c, s, v FROM par.s WHERE k = 2"))
    expect(rows == [], f"deleted static leaves {rows}")
    s.execute("CREATE TABLE par.sl (k int, c int, tags list<int> STATIC, PRIMARY KEY (k, c))")
    s.execute("UPDATE par.sl SET tags = [1, 2, 3] WHERE k = 1")
    s.execute("UPDATE par.sl SET tags[1] = 20 WHERE k = 1")
    s.execute("DELETE tags[0] FROM par.sl WHERE k = 1")
    tags = s.execute("SELECT tags FROM par.sl WHERE k = 1").one().tags
    expect(tags == [20, 3], f"static list reads {tags}")
    set_element = s.prepare("UPDATE par.sl SET tags[?] = ? WHERE k = ?")
    names = [c.name for c in set_element.column_metadata]
    expect(names == ["idx(tags)", "value(tags)", "k"], f"bind markers named {names}")
    s.execute(set_element, (0, 30, 1))
    tags = s.execute("SELECT tags FROM par.sl WHERE k = 1").one().tags
    expect(tags == [30, 3], f"static list after a bound element update reads {tags}")
    # What still needs the clustering key says so.
    expect_error(InvalidRequest, s, "UPDATE par.s SET v = 1 WHERE k = 1", "Some clustering keys are missing: c")
    expect_error(InvalidRequest, s, "INSERT INTO par.s (k, v) VALUES (1, 1)", "Some clustering keys are missing: c")
    expect_error(InvalidRequest, s, "DELETE v FROM par.s WHERE k = 1", "Some clustering keys are missing: c")
    # PREPARE checks what an INSERT names, as Cassandra does.
    for cql, fragment in [("INSERT INTO par.s (c, v) VALUES (?, ?)", "Some partition key parts are missing: k"),
                          ("INSERT INTO par.s (k, v) VALUES (?, ?)", "Some clustering keys are missing: c")]:
        try:
            s.prepare(cql)
            raise AssertionError(f"PREPARE {cql!r} was accepted")
        except InvalidRequest as error:
            expect(fragment in str(error), f"PREPARE {cql!r}: {error}")
    s.prepare("INSERT INTO par.s (k, s) VALUES (?, ?)")
    try:
        s.prepare("INSERT INTO par.s (k, c, v) VALUES (?, ?, ?, ?)")
        raise AssertionError("PREPARE with more values than columns was accepted")
    except InvalidRequest as error:
        expect("Unmatched column names/values" in str(error), f"PREPARE with 4 values: {error}")
    # ALTER KEYSPACE with only durable_writes keeps the replication.
    s.execute("ALTER KEYSPACE par WITH durable_writes = false")
    row = s.execute("SELECT durable_writes, replication FROM system_schema.keyspaces WHERE keyspace_name = 'par'").one()
    expect(row.durable_writes is False, f"durable_writes reads {row.durable_writes}")
    expect(row.replication.get("replication_factor") == "1", f"replication became {row.replication}")
    # A trailing comma; quoted type names inside frozen<>.
    s.execute("CREATE TABLE par.trailing (k int PRIMARY KEY, v int,)")
    odd = "test.field@#$%@%#!"  # the Python driver's own test uses this name
    s.execute(f'CREATE TYPE par."{odd}" ("{odd}" text)')
    s.execute(f'CREATE TABLE par.q (k int PRIMARY KEY, m map<frozen<"{odd}">, int>)')
    s.execute(f'INSERT INTO par.q (k, m) VALUES (0, {{{{"{odd}": \'nonalphanum\'}}: 0}})')
    key, value = s.execute("SELECT m FROM par.q WHERE k = 0").one().m.popitem()
    expect(getattr(key, "_0", None) == "nonalphanum" or key[0] == "nonalphanum", f"odd type's value read {key!r}")
    expect(value == 0, f"map value read {value}")
    # Fields of user-defined type values in selections.
    s.execute("CREATE TYPE par.city (name text, zip int)")
    s.execute("CREATE TYPE par.addr (street text, city frozen<city>)")
    s.execute("CREATE TABLE par.people (k int PRIMARY KEY, home frozen<addr>)")
    s.execute("INSERT INTO par.people (k, home) VALUES (1, {street: 'Main', city: {name: 'Troy', zip: 12180}})")
    s.execute("INSERT INTO par.people (k, home) VALUES (2, {street: 'Elm'})")
    row = s.execute("SELECT home.street, home.city.zip AS zip, home.city FROM par.people WHERE k = 1").one()
    expect(row[0] == "Main" and row.zip == 12180 and row[2].name == "Troy", f"field selection read {row}")
    row = s.execute("SELECT home.city.name FROM par.people WHERE k = 2").one()
    expect(row[0] is None, f"a null field read {row}")
    expect_error(InvalidRequest, s, "SELECT home.nope FROM par.people", "has no field nope")
    expect_error(InvalidRequest, s, "SELECT k.x FROM par.people", "not a user type")
    # GROUP BY may leave out key columns restricted to one value.
    s.execute("CREATE TABLE par.g (p int, c1 int, c2 int, v int, PRIMARY KEY (p, c1, c2))")
    insert = s.prepare("INSERT INTO par.g (p, c1, c2, v) VALUES (?, ?, ?, ?)")
    for c1 in range(3):
        for c2 in range(c1 + 1):
            s.execute(insert, (1, c1, c2, 1))
    s.execute(insert, (2, 0, 0, 1))
    groups = [tuple(r) for r in s.execute("SELECT c1, count(*) FROM par.g WHERE p = 1 GROUP BY c1")]
    expect(groups == [(0, 1), (1, 2), (2, 3)], f"GROUP BY c1 gave {groups}")
    groups = [tuple(r) for r in s.execute("SELECT c2, count(*) FROM par.g WHERE p = 1 AND c1 = 2 GROUP BY c2")]
    expect(groups == [(0, 1), (1, 1), (2, 1)], f"GROUP BY c2 gave {groups}")
    expect_error(InvalidRequest, s, "SELECT c2, count(*) FROM par.g WHERE p = 1 GROUP BY c2", "out of order")
    # Native functions in selections: math in the argument's type, blob conversions.
    s.execute("CREATE TABLE par.f (k int PRIMARY KEY, i int, d double, b blob)")
    s.execute("INSERT INTO par.f (k, i, d, b) VALUES (1, -7, 2.5, 0x0000002a)")
    row = s.execute("SELECT abs(i), round(d), exp(i), log10(d), intAsBlob(i), blobAsInt(b) FROM par.f WHERE k = 1").one()
    expect(row[0] == 7 and row[1] == 3.0 and row[2] == 0 and abs(row[3] - 0.39794) < 1e-4, f"math read {row}")
    expect(row[4] == b"\xff\xff\xff\xf9" and row[5] == 42, f"blob conversions read {row}")
    expect_error(InvalidRequest, s, "SELECT abs(b) FROM par.f", "cannot be passed")
    expect_error(InvalidRequest, s, "SELECT blobAsInt(i) FROM par.f", "cannot be passed")
    # Client warnings, in Cassandra's words: a batch over 5 KiB, an
    # aggregate over the whole table; none for a small batch.
    s.execute("CREATE TABLE par.w (k int PRIMARY KEY, v text)")
    insert_w = s.prepare("INSERT INTO par.w (k, v) VALUES (?, ?)")
    big = BatchStatement()
    for i in range(60):
        big.add(insert_w, (i, "x" * 100))
    future = s.execute_async(big)
    future.result()
    expect(future.warnings and "Batch for [par.w] is of size" in future.warnings[0]
           and "exceeding specified threshold of 5120" in future.warnings[0], f"big batch warned {future.warnings}")
    small = BatchStatement()
    small.add(insert_w, (1, "x"))
    future = s.execute_async(small)
    future.result()
    expect(not future.warnings, f"small batch warned {future.warnings}")
    future = s.execute_async("SELECT count(*) FROM par.w")
    future.result()
    expect(future.warnings == ["Aggregation query used without partition key"], f"aggregate warned {future.warnings}")
    future = s.execute_async("SELECT count(*) FROM par.w WHERE k = 1")
    future.result()
    expect(not future.warnings, f"keyed aggregate warned {future.warnings}")
    # A statement prepared with a keyspace (v5) runs there, whatever the
    # connection's keyspace.
    s.set_keyspace("system")
    by_keyspace = s.prepare("SELECT s FROM s WHERE k = ?", keyspace="par")
    row = s.execute(by_keyspace, (1,)).one()
    expect(row is not None and row.s == 7, f"per-request keyspace read {row}")
    tracing(s)
    compression(cluster, s)
    composite_order(s)
    custom_types(cluster, s)
    dropped_table_unprepares(s)
    beta_protocol(port)
    reinterpreting_terms(s)
    selection_functions(s)
    non_frozen_udts(cluster, s)
    cluster.shutdown()
    print("parity: all checks passed")


def non_frozen_udts(cluster, s):
    """A non-frozen UDT column, its fields set and deleted one at a time
    (simple and prepared), read back through a registered class."""
    from collections import namedtuple
    s.execute("CREATE TYPE par.farm (state text, has_corn boolean)")
    s.execute("CREATE TABLE par.farms (a int PRIMARY KEY, b farm)")
    Farm = namedtuple("farm", ("state", "has_corn"))
    cluster.register_user_type("par", "farm", Farm)
    s.execute("INSERT INTO par.farms (a, b) VALUES (%s, %s)", (0, Farm("Nebraska", True)))
    s.execute("UPDATE par.farms SET b.has_corn = False WHERE a = 0")
    row = s.execute("SELECT b FROM par.farms WHERE a = 0").one()
    expect(row.b == Farm("Nebraska", False), f"field update reads {row}")
    set_field = s.prepare("UPDATE par.farms SET b.state = ? WHERE a = ?")
    names = [c.name for c in set_field.column_metadata]
    expect(names == ["b.state", "a"], f"field bind markers named {names}")
    s.execute(set_field, ("Iowa", 0))
    s.execute("DELETE b.has_corn FROM par.farms WHERE a = 0")
    row = s.execute("SELECT b, b.state FROM par.farms WHERE a = 0").one()
    expect(row.b == Farm("Iowa", None) and row.b_state == "Iowa", f"prepared field set reads {row}")
    table = cluster.metadata.keyspaces["par"].tables["farms"].as_cql_query()
    expect("frozen" not in table, f"the driver sees a frozen column: {table}")
    delete_element = s.prepare("DELETE tags[?] FROM par.sl WHERE k = ?")
    names = [c.name for c in delete_element.column_metadata]
    expect(names == ["idx(tags)", "k"], f"DELETE element bind markers named {names}")


def selection_functions(s):
    """Clock and collection functions in selections (Cassandra 5.0)."""
    import uuid as uuidlib
    import datetime
    s.execute("CREATE TABLE par.fns (k int PRIMARY KEY, m map<text, int>, l list<int>, st set<text>)")
    s.execute("INSERT INTO par.fns (k, m, l, st) VALUES (1, {'b': 2, 'a': 1}, [3, -1, 7], {'x', 'y'})")
    s.execute("INSERT INTO par.fns (k) VALUES (2)")
    row = s.execute("SELECT map_keys(m) AS keys, map_values(m) AS vals, collection_count(l) AS n, "
                    "collection_min(l) AS lo, collection_max(l) AS hi, collection_count(st) AS ns "
                    "FROM par.fns WHERE k = 1").one()
    expect(sorted(row.keys) == ["a", "b"] and list(row.vals) == [1, 2], f"map functions {row}")
    expect((row.n, row.lo, row.hi, row.ns) == (3, -1, 7, 2), f"collection functions {row}")
    row = s.execute("SELECT map_keys(m), collection_count(l) FROM par.fns WHERE k = 2").one()
    expect(tuple(row) == (None, None), f"functions of null collections {row}")
    before = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(seconds=5)
    rows = list(s.execute("SELECT k, now() AS t, uuid() AS u, currentTimestamp() AS ts, currentDate() AS d FROM par.fns"))
    expect(len(rows) == 2, f"rows {rows}")
    expect(all(r.t.version == 1 and r.u.version == 4 for r in rows), f"ids {rows}")
    expect(rows[0].t != rows[1].t and rows[0].u != rows[1].u, "now() and uuid() are per row")
    expect(all(r.ts >= before for r in rows), f"currentTimestamp {rows[0].ts} before {before}")
    row = s.execute("SELECT toJson(m) AS jm, toJson(l) AS jl, toJson(st) AS js FROM par.fns WHERE k = 1").one()
    expect((row.jm, row.jl, row.js) == ('{"a": 1, "b": 2}', "[3, -1, 7]", '["x", "y"]'), f"toJson {row}")
    row = s.execute("SELECT toJson(m) AS jm FROM par.fns WHERE k = 2").one()
    expect(row.jm == "null", f"toJson of null {row}")
    s.execute("""INSERT INTO par.fns (k, m, l) VALUES (3, fromJson('{"z": 26}'), fromJson('[1, 2]'))""")
    row = s.execute("SELECT m, l FROM par.fns WHERE k = 3").one()
    expect(dict(row.m) == {"z": 26} and list(row.l) == [1, 2], f"fromJson {row}")
    expect_error(InvalidRequest, s, "INSERT INTO par.fns (k, m) VALUES (4, fromJson('{oops'))", "Could not decode JSON")
    row = s.execute("SELECT release_version, now() AS t, currentDate() FROM system.local").one()
    expect(row.release_version and row.t.version == 1, f"clock functions on system.local {row}")
    expect(row[2] is not None, f"currentDate() on system.local {row}")
    expect_error(InvalidRequest, s, "SELECT map_keys(l) FROM par.fns", "cannot be passed as argument 0 of function system.map_keys")
    expect_error(InvalidRequest, s, "SELECT now(k) FROM par.fns", "0 required but 1 provided")


def reinterpreting_terms(s):
    """blobAs<type> and <type>AsBlob in INSERT values, as in Cassandra."""
    from cassandra.cqltypes import Int32Type, EMPTY
    s.execute("CREATE TABLE par.reint (k text PRIMARY KEY, i int, b blob, l bigint)")
    s.execute("INSERT INTO par.reint (k, i, b, l) VALUES ('a', blobAsInt(0x0000002a), intAsBlob(7), blobAsBigint(0x0000000000000009))")
    row = s.execute("SELECT i, b, l FROM par.reint WHERE k = 'a'").one()
    expect((row.i, row.b, row.l) == (42, b"\x00\x00\x00\x07", 9), f"reinterpreted values read {row}")
    s.execute("INSERT INTO par.reint (k, i) VALUES ('e', blobAsInt(0x))")
    try:
        Int32Type.support_empty_values = True
        row = s.execute("SELECT i FROM par.reint WHERE k = 'e'").one()
        expect(row is not None and row.i is EMPTY, f"an empty int reads {row}")
    finally:
        Int32Type.support_empty_values = False
    expect_error(InvalidRequest, s, "INSERT INTO par.reint (k, i) VALUES ('x', blobAsBigint(0x01))", "Type error")
    expect_error(InvalidRequest, s, "INSERT INTO par.reint (k, i) VALUES ('x', blobAsInt(0x0102))", "not a valid binary representation")


def beta_protocol(port):
    """v6-beta, when the client allows beta versions (as Cassandra 5.0)."""
    beta = Cluster(["127.0.0.1"], port=port, protocol_version=6, allow_beta_protocol_version=True)
    session = beta.connect()
    row = session.execute("SELECT release_version FROM system.local").one()
    expect(row is not None and beta.protocol_version == 6, f"v6-beta session: {beta.protocol_version}")
    prepared = session.prepare("SELECT s FROM par.s WHERE k = ?")
    expect(session.execute(prepared, (1,)).one().s == 7, "v6-beta prepared read")
    beta.shutdown()


def dropped_table_unprepares(s):
    """A statement prepared on a dropped table is not run against a new
    table of the same name: the driver is told to prepare it again."""
    s.execute("CREATE TABLE par.foo (k int PRIMARY KEY)")
    prepared = s.prepare("SELECT * FROM par.foo WHERE k = ?")
    s.execute("INSERT INTO par.foo (k) VALUES (0)")
    expect(len(list(s.execute(prepared, [0]))) == 1, "prepared read before the drop")
    s.execute("DROP TABLE par.foo")
    s.execute("CREATE TABLE par.foo (k int PRIMARY KEY, v int)")
    s.execute("INSERT INTO par.foo (k, v) VALUES (0, 1)")
    rows = list(s.execute(prepared, [0]))
    expect(len(rows) == 1 and rows[0].v == 1, f"re-prepared read sees the new table: {rows}")
    # Prepared again in another keyspace, the id differs: the driver says so.
    s.execute("DROP TABLE par.foo")
    s.execute("CREATE TABLE par.foo (k int PRIMARY KEY)")
    s.set_keyspace("system")
    try:
        s.execute(prepared, [0])
        raise AssertionError("executing after a drop and a USE should fail on the id")
    except DriverException as error:
        expect("ID mismatch" in str(error), f"error {error}")
    s.set_keyspace("par")


def custom_types(cluster, s):
    """Types written as class strings, as Cassandra takes them."""
    s.execute("CREATE TABLE par.composites (a int PRIMARY KEY, "
              "b 'org.apache.cassandra.db.marshal.CompositeType(AsciiType, Int32Type)', "
              "c 'DynamicCompositeType(s => UTF8Type, i => Int32Type)', d 'Int32Type')")
    s.execute("INSERT INTO par.composites (a, b, d) VALUES (0, 'abc:123', 5)")
    row = s.execute("SELECT b, d FROM par.composites WHERE a = 0").one()
    expect(tuple(row.b) == ("abc", 123) and row.d == 5, f"composite read back {row}")
    s.execute("INSERT INTO par.composites (a, b) VALUES (0, 'abc')")
    row = s.execute("SELECT b FROM par.composites WHERE a = 0").one()
    expect(tuple(row.b) == ("abc",), f"short composite read back {row}")
    types = {r.column_name: r.type for r in s.execute(
        "SELECT column_name, type FROM system_schema.columns WHERE keyspace_name = 'par' AND table_name = 'composites'")}
    expect(types["d"] == "int", f"'Int32Type' is int, not {types['d']}")
    expect(types["c"] == "'org.apache.cassandra.db.marshal.DynamicCompositeType(s=>org.apache.cassandra.db.marshal.UTF8Type,"
           "i=>org.apache.cassandra.db.marshal.Int32Type)'", f"dynamic composite stored as {types['c']}")
    expect_error(InvalidRequest, s, "INSERT INTO par.composites (a, b) VALUES (1, 'abc:123:x')", "3 components")
    expect_error(InvalidRequest, s, "INSERT INTO par.composites (a, c) VALUES (1, 'x')", "not yet supported")
    expect_error(SyntaxException, s, "CREATE TABLE par.badcustom (a int PRIMARY KEY, b 'Int32Type(')", "custom type")
    # Hostile class strings: unknown classes, deep nesting, a huge name.
    expect_error(SyntaxException, s, "CREATE TABLE par.badcustom (a int PRIMARY KEY, b 'NoSuchType')",
                 "Unable to find abstract-type class 'NoSuchType'")
    deep = "CompositeType(" * 5000 + "Int32Type" + ")" * 5000
    expect_error(SyntaxException, s, f"CREATE TABLE par.badcustom (a int PRIMARY KEY, b '{deep}')", "nest deeper than 64")
    huge = "A" * 100_000
    expect_error(SyntaxException, s, f"CREATE TABLE par.badcustom (a int PRIMARY KEY, b '{huge}')", "Unable to find")
    expect(s.execute("SELECT b FROM par.composites WHERE a = 0").one() is not None, "the node serves on")


def composite_order(s):
    """Tuples, frozen collections and varints order as Cassandra orders them."""
    s.execute("CREATE TABLE par.tc (k int, c frozen<tuple<int, text>>, PRIMARY KEY (k, c))")
    insert = s.prepare("INSERT INTO par.tc (k, c) VALUES (0, ?)")
    for c in [(1, "b"), (-5, "b"), (1, "aa"), (-10, "z"), (1, None)]:
        s.execute(insert, (c,))
    got = [r.c for r in s.execute("SELECT c FROM par.tc WHERE k = 0")]
    expect(got == [(-10, "z"), (-5, "b"), (1, None), (1, "aa"), (1, "b")], f"tuple clustering order {got}")
    got = [r.c for r in s.execute("SELECT c FROM par.tc WHERE k = 0 AND c > (1, 'a')")]
    expect(got == [(1, "aa"), (1, "b")], f"tuple clustering slice {got}")
    s.execute("CREATE TABLE par.vc (k int, c varint, PRIMARY KEY (k, c)) WITH CLUSTERING ORDER BY (c DESC)")
    for c in [5, -1, 70000, -300, 0, 2**70, -(2**70)]:
        s.execute("INSERT INTO par.vc (k, c) VALUES (0, %s)", (c,))
    got = [r.c for r in s.execute("SELECT c FROM par.vc WHERE k = 0")]
    expect(got == [2**70, 70000, 5, 0, -1, -300, -(2**70)], f"varint clustering order {got}")
    # Timeuuids by time, across time_low's wrap (every 7 minutes), and
    # minTimeuuid/maxTimeuuid bound a time range.
    from cassandra.util import uuid_from_time
    s.execute("CREATE TABLE par.events (k int, t timeuuid, v int, PRIMARY KEY (k, t))")
    insert = s.prepare("INSERT INTO par.events (k, t, v) VALUES (0, ?, ?)")
    base = 1_700_000_000
    for minutes in [30, 0, 9, 2, 17]:
        s.execute(insert, (uuid_from_time(base + minutes * 60), minutes))
    got = [r.v for r in s.execute("SELECT v FROM par.events WHERE k = 0")]
    expect(got == [0, 2, 9, 17, 30], f"timeuuid clustering order {got}")
    got = [r.v for r in s.execute(
        "SELECT v FROM par.events WHERE k = 0 AND t > maxTimeuuid('2023-11-14 22:15:00+0000') "
        "AND t < minTimeuuid('2023-11-14 22:30:00+0000')")]
    expect(got == [2, 9], f"timeuuid range by min/maxTimeuuid {got}")
    s.execute("CREATE TABLE par.mk (k int PRIMARY KEY, m map<frozen<map<int, text>>, int>, l list<frozen<list<int>>>)")
    s.execute("UPDATE par.mk SET m = m + {{3: 'v3'}: 1, {1: 'v1', 2: 'v2'}: 2, {1: 'v1'}: 3} WHERE k = 0")
    got = [dict(key) for key in s.execute("SELECT m FROM par.mk WHERE k = 0").one().m.keys()]
    expect(got == [{1: "v1"}, {1: "v1", 2: "v2"}, {3: "v3"}], f"map of frozen maps ordered {got}")


def compression(cluster, s):
    """Table compression options are kept as given, as Cassandra keeps them."""
    s.execute("CREATE TABLE par.plain (k int PRIMARY KEY) WITH compression = {'enabled': 'false'}")
    s.execute("CREATE TABLE par.big (k int PRIMARY KEY) WITH compression = {'class': 'ZstdCompressor', 'chunk_length_in_kb': 64}")
    s.execute("CREATE TABLE par.usual (k int PRIMARY KEY)")
    s.execute("CREATE TABLE par.empty (k int PRIMARY KEY) WITH compression = {}")
    stored = {r.table_name: dict(r.compression) for r in s.execute(
        "SELECT table_name, compression FROM system_schema.tables WHERE keyspace_name = 'par'")}
    expect(stored["plain"] == {"enabled": "false"}, f"disabled stored as {stored['plain']}")
    expect(stored["empty"] == {"enabled": "false"}, f"empty stored as {stored['empty']}")
    expect(stored["big"] == {"class": "org.apache.cassandra.io.compress.ZstdCompressor", "chunk_length_in_kb": "64"},
           f"zstd stored as {stored['big']}")
    expect(stored["usual"] == {"class": "org.apache.cassandra.io.compress.LZ4Compressor", "chunk_length_in_kb": "16"},
           f"default stored as {stored['usual']}")
    cluster.refresh_table_metadata("par", "plain")
    cql = cluster.metadata.keyspaces["par"].tables["plain"].export_as_string()
    expect("compression = {'enabled': 'false'}" in cql, f"exported {cql}")
    s.execute("ALTER TABLE par.usual WITH compression = {'class': 'LZ4Compressor', 'chunk_length_in_kb': 4}")
    row = s.execute("SELECT compression FROM system_schema.tables WHERE keyspace_name = 'par' AND table_name = 'usual'").one()
    expect(dict(row.compression)["chunk_length_in_kb"] == "4", f"altered to {row.compression}")
    expect_error(InvalidRequest, s, "CREATE TABLE par.bad (k int PRIMARY KEY) WITH compression = {'class': 'NoSuchCompressor'}",
                 "Could not create Compression for type NoSuchCompressor")
    expect_error(InvalidRequest, s, "CREATE TABLE par.bad (k int PRIMARY KEY) WITH compression = {'chunk_length_in_kb': 3, 'class': 'LZ4Compressor'}",
                 "power of 2")
    expect_error(InvalidRequest, s, "CREATE TABLE par.bad (k int PRIMARY KEY) WITH compression = {'level': 3, 'class': 'LZ4Compressor'}",
                 "Unknown compression options [level]")
    expect_error(InvalidRequest, s, "CREATE TABLE par.bad (k int PRIMARY KEY) WITH compression = {'chunk_length_in_kb': 64}",
                 "Missing sub-option 'class'")


def tracing(s):
    """trace=True: the driver reads the trace from system_traces."""
    s.set_keyspace("par")
    untraced = s.execute("SELECT s FROM s WHERE k = 1")
    expect(untraced.get_query_trace() is None, "an untraced statement has a trace")
    rs = s.execute("INSERT INTO s (k, c, v) VALUES (3, 1, 1)", trace=True)
    trace = rs.get_query_trace(5.0)
    expect(trace.request_type == "Execute CQL3 query", f"request type {trace.request_type}")
    expect(trace.duration is not None and trace.started_at is not None, "trace incomplete")
    expect(str(trace.coordinator) == "127.0.0.1", f"coordinator {trace.coordinator}")
    expect(trace.parameters.get("query") == "INSERT INTO s (k, c, v) VALUES (3, 1, 1)",
           f"parameters {trace.parameters}")
    steps = [e.description for e in trace.events]
    expect(steps and steps[0].startswith("Parsing INSERT"), f"steps {steps}")
    expect(any("memtable" in step for step in steps), f"no write step in {steps}")
    prepared = s.prepare("SELECT v FROM s WHERE k = ? AND c = ?")
    rs = s.execute(prepared, (3, 1), trace=True)
    expect([tuple(r) for r in rs] == [(1,)], "traced read lost its rows")
    trace = rs.get_query_trace(5.0)
    steps = [e.description for e in trace.events]
    expect(trace.request_type == "Execute CQL3 prepared query", f"request {trace.request_type}")
    expect(any("Read locally: 1 live rows" in step for step in steps), f"no read step in {steps}")
    times = [e.datetime for e in trace.events]
    expect(times == sorted(times), f"steps out of order {times}")
    # A client may delete what drivers poll for, as in Cassandra.
    s.execute(f"DELETE duration FROM system_traces.sessions WHERE session_id = {trace.trace_id}")
    row = s.execute(f"SELECT duration FROM system_traces.sessions WHERE session_id = {trace.trace_id}").one()
    expect(row is not None and row.duration is None, f"duration after delete {row}")
    expect_error(InvalidRequest, s, "DELETE FROM system_traces.events WHERE session_id = 00000000-0000-0000-0000-000000000000",
                 "not yet supported")
    # More traced requests than the node keeps: the newest 1,000 stay.
    from cassandra.query import SimpleStatement
    for _ in range(3):  # 500 at a time: under the 1,024 requests a connection may have in flight
        futures = [s.execute_async(SimpleStatement("SELECT v FROM s WHERE k = 3 AND c = 1"), trace=True)
                   for _ in range(500)]
        for future in futures:
            future.result()
    kept = len(list(s.execute("SELECT session_id FROM system_traces.sessions")))
    expect(kept == 1_000, f"trace sessions kept {kept}")
    events = len(list(s.execute("SELECT event_id FROM system_traces.events")))
    expect(0 < events <= 1_000 * 1_000, f"trace events kept {events}")


if __name__ == "__main__":
    port = int(sys.argv[1])
    mode = sys.argv[2]
    if mode == "full":
        full(port)
    elif mode == "write":
        write(port)
    elif mode == "auth":
        auth(port)
    elif mode == "query":
        cluster, s = connect(port)
        for row in s.execute(sys.argv[3]):
            print("|".join(str(v) for v in row))
        cluster.shutdown()
    elif mode == "alter":
        alter(port)
    elif mode == "timeouts":
        timeouts(port)
    elif mode == "parity":
        parity(port)
    else:
        read(port, int(sys.argv[3]))
