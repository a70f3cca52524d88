//! Goal: `ilion shell` behaves as cqlsh does for a user: scripts through
//! `-e`, `-f` and stdin print cqlsh's tables and errors (with `source:line:`)
//! and exit 1 when a statement failed; shell commands answer as cqlsh's;
//! COPY TO/FROM round-trips every type; and at a terminal (a real
//! pseudo-terminal here) it edits lines, continues statements over lines,
//! completes names with Tab and keeps history; and a golden script
//! (`tests/golden/shell.cql`) prints line for line what the pinned cqlsh
//! prints against the same node.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ilion_bin, Node};

/// Runs `ilion shell 127.0.0.1 <port> <args>` with `stdin`; returns
/// (exit code, stdout, stderr).
fn shell(port: u16, args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(ilion_bin())
        .args(["shell", "127.0.0.1", &port.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ilion shell");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("write stdin");
    }
    let output = child.wait_with_output().expect("wait for ilion shell");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn ok(port: u16, statements: &str) -> String {
    let (code, out, err) = shell(port, &["-e", statements], "");
    assert_eq!(code, 0, "{statements}: {err}");
    out
}

const SCHEMA: &str = "CREATE KEYSPACE shop WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};\
    CREATE TYPE shop.address (street text, zip int);\
    CREATE TABLE shop.everything (k int, c text, name text, tags set<text>, scores list<int>, attrs map<text, int>, \
      d double, f float, b blob, ts timestamp, day date, at time, u uuid, tu timeuuid, ok boolean, dur duration, \
      big varint, dec decimal, ip inet, small smallint, tiny tinyint, n bigint, home frozen<address>, pair frozen<tuple<int, text>>, \
      PRIMARY KEY (k, c));";

#[test]
fn shell_scripts_print_like_cqlsh_and_copy_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(Duration::from_secs(20));
    let port = node.ports.native;
    ok(port, SCHEMA);

    // -e: a table exactly as cqlsh draws it.
    let out = ok(
        port,
        "INSERT INTO shop.everything (k, c, name, ok) VALUES (1, 'a', 'ann', true);\
         INSERT INTO shop.everything (k, c, name) VALUES (10, 'b', 'bob');\
         SELECT k, c, name, ok FROM shop.everything WHERE k IN (1, 10);",
    );
    assert_eq!(
        out,
        "\n k  | c | name | ok\n----+---+------+------\n  1 | a |  ann | True\n 10 | b |  bob | null\n\n(2 rows)\n"
    );

    // Every type, printed as cqlsh prints it.
    ok(port, "INSERT INTO shop.everything (k, c, name, tags, scores, attrs, d, f, b, ts, day, at, u, tu, ok, dur, big, dec, ip, small, tiny, n, home, pair) \
        VALUES (2, 'x', 'it''s', {'b', 'a'}, [3, 1], {'k': 7}, 0.1, 2.5, 0xcafe, '2024-01-02 03:04:05.006+0000', '2024-01-02', '12:34:56.789', \
        5132b130-ae79-11e4-ab27-0800200c9a66, 50554d6e-29bb-11e5-b345-feff819cdc9f, false, 1h30m, 123456789012345678901234567890, -12.345, '10.0.0.1', -3, 7, 9000000000, \
        {street: 'Main', zip: 12345}, (1, 'one'))");
    let out = ok(
        port,
        "EXPAND ON; SELECT * FROM shop.everything WHERE k = 2;",
    );
    for expected in [
        " name   | it's",
        " tags   | {'a', 'b'}",
        " scores | [3, 1]",
        " attrs  | {'k': 7}",
        " d      | 0.1",
        " f      | 2.5",
        " b      | 0xcafe",
        " ts     | 2024-01-02 03:04:05.006000+0000",
        " day    | 2024-01-02",
        " at     | 12:34:56.789000000",
        " ok     | False",
        " dur    | 1h30m",
        " big    | 123456789012345678901234567890",
        " dec    | -12.345",
        " ip     | 10.0.0.1",
        " home   | {street: 'Main', zip: 12345}",
        " pair   | (1, 'one')",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }

    // COPY TO, TRUNCATE, COPY FROM: the same rows come back.
    let before = ok(port, "SELECT * FROM shop.everything;");
    let csv = dir.path().join("everything.csv");
    let out = ok(
        port,
        &format!(
            "COPY shop.everything TO '{}' WITH HEADER = true",
            csv.display()
        ),
    );
    assert!(out.starts_with("3 rows exported to 1 files in "), "{out}");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("k,c,"), "{text}");
    ok(port, "TRUNCATE shop.everything;");
    assert!(ok(port, "SELECT * FROM shop.everything;").contains("(0 rows)"));
    let out = ok(
        port,
        &format!(
            "COPY shop.everything FROM '{}' WITH HEADER = true",
            csv.display()
        ),
    );
    assert!(out.contains("3 rows imported from 1 files in "), "{out}");
    assert!(out.contains(" rows/s; 0 skipped)."), "{out}");
    assert_eq!(ok(port, "SELECT * FROM shop.everything;"), before);

    // A bad record is reported and the rest imported; the exit code says so.
    let partial = dir.path().join("partial.csv");
    std::fs::write(&partial, "k,c,name\n20,a,ok\nnot-a-number,b,bad\n21,c,ok\n").unwrap();
    let (code, out, err) = shell(
        port,
        &[
            "-e",
            &format!(
                "COPY shop.everything (k, c, name) FROM '{}' WITH HEADER = true",
                partial.display()
            ),
        ],
        "",
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("2 rows imported") && out.contains("; 1 skipped)"),
        "{out}"
    );
    assert!(
        err.contains("Failed to import 1 rows") && err.contains("record 3"),
        "{err}"
    );

    // -f: errors carry file:line, later statements still run, exit code 1.
    let script = dir.path().join("script.cql");
    std::fs::write(
        &script,
        "USE shop;\n\nSELECT name\n  FROM everything WHERE k = 1 AND c = 'a';\nSELEC oops;\nSELECT nope FROM everything;\nCONSISTENCY QUORUM\nCONSISTENCY\nPAGING OFF\nSELECT name FROM everything WHERE k = 10;\n",
    )
    .unwrap();
    let (code, out, err) = shell(port, &["-f", script.to_str().unwrap()], "");
    assert_eq!(code, 1, "{out}{err}");
    let file = script.display().to_string();
    assert!(
        err.contains(&format!("{file}:6:SyntaxException: line 1:")),
        "{err}"
    );
    assert!(err.contains(&format!("{file}:7:InvalidRequest: Error from server: code=2200 [Invalid query] message=\"Undefined column name nope\"")), "{err}");
    assert!(out.contains(" name\n------\n  ann\n"), "{out}");
    assert!(out.contains("Consistency level set to QUORUM.\nCurrent consistency level is QUORUM.\nPAGING set to OFF\n"), "{out}");
    assert!(out.contains("  bob\n"), "{out}");

    // stdin, DESCRIBE, CAPTURE, SOURCE, HELP, TRACING.
    let capture = dir.path().join("captured.txt");
    let source = dir.path().join("source.cql");
    std::fs::write(&source, "SELECT name FROM shop.everything WHERE k = 10;\n").unwrap();
    let (code, out, err) = shell(
        port,
        &[],
        &format!(
            "DESCRIBE KEYSPACE shop;\nCAPTURE '{}'\nSOURCE '{}'\nCAPTURE OFF\nHELP\nTRACING ON\n\
             SELECT name FROM shop.everything WHERE k = 10;\nTRACING\nTRACING OFF\nTRACING OFF\n\
             EXIT\nSELECT 'never' FROM shop.everything;\n",
            capture.display(),
            source.display()
        ),
    );
    assert_eq!(code, 0, "every statement succeeds: {err}");
    assert!(
        out.contains("CREATE KEYSPACE shop WITH replication"),
        "{out}"
    );
    assert!(out.contains("CREATE TYPE shop.address"), "{out}");
    assert!(out.contains("CREATE TABLE shop.everything"), "{out}");
    assert!(out.contains("CQL statements (end with ;)"), "{out}");
    // The traced SELECT prints its rows, then its trace as cqlsh does.
    assert!(
        out.contains("TRACING set to ON\n")
            && out.contains("TRACING is ON\nTRACING set to OFF\nTRACING is already OFF\n"),
        "{out}"
    );
    let trace = out
        .split("\nTracing session: ")
        .nth(1)
        .expect("a trace is printed");
    let header = " activity";
    assert!(
        trace.contains(header) && trace.contains("| source_elapsed | client"),
        "{trace}"
    );
    for step in [
        "Execute CQL3 query |",
        "Parsing SELECT name FROM shop.everything WHERE k = 10 [",
        "Reading token ",
        "Read locally: 1 live rows [",
        "Request complete |",
    ] {
        assert!(trace.contains(step), "no {step:?} in the trace:\n{trace}");
    }
    assert!(
        !out.contains("never") && !err.contains("never"),
        "EXIT ends the script"
    );
    let captured = std::fs::read_to_string(&capture).unwrap();
    assert!(
        captured.contains("  bob\n") && captured.contains("(1 rows)"),
        "{captured}"
    );

    // Nothing listening: a connection error and exit 1.
    let (code, _, err) = shell(common::free_port(), &["-e", "SELECT 1"], "");
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Connection error: could not connect to 127.0.0.1:"),
        "{err}"
    );
}

/// Types keys at the terminal (rexpect's `send` buffers until a flush).
fn keys(p: &mut rexpect::session::PtySession, text: &str) {
    p.send(text).unwrap();
    p.flush().unwrap();
}

/// Reads a file of the shell's history, if written.
fn history(home: &Path) -> String {
    std::fs::read_to_string(home.join(".ilion").join("shell_history")).unwrap_or_default()
}

#[test]
fn shell_edits_completes_and_remembers_at_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(Duration::from_secs(20));
    let port = node.ports.native;
    ok(port, "CREATE KEYSPACE shop WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};\
              CREATE TABLE shop.users (user_id int PRIMARY KEY, name text);");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    let mut command = Command::new(ilion_bin());
    command
        .args(["shell", "127.0.0.1", &port.to_string(), "--no-color"])
        .env("HOME", &home)
        .env("TERM", "xterm");
    let mut p = rexpect::spawn_with_options(
        command,
        rexpect::reader::Options::new()
            .timeout_ms(Some(20_000))
            .strip_ansi_escape_codes(false),
    )
    .expect("spawn the shell on a pty");
    p.exp_string("Connected to Test Cluster").unwrap();
    p.exp_string("ilion> ").unwrap();
    p.send_line("USE shop;").unwrap();
    p.exp_string("ilion:shop> ").unwrap();

    // A statement over two lines: the continuation prompt, then the result.
    p.send_line("INSERT INTO users (user_id, name)").unwrap();
    p.exp_string("   ... ").unwrap();
    p.send_line("VALUES (1, 'ann');").unwrap();
    p.exp_string("ilion:shop> ").unwrap();

    // Tab completes the table name, then a column of that table.
    keys(&mut p, "SELECT * FROM us");
    keys(&mut p, "\t");
    p.exp_string("users").unwrap();
    keys(&mut p, " WHERE user_");
    keys(&mut p, "\t");
    p.exp_string("user_id").unwrap();
    p.send_line(" = 1;").unwrap();
    p.exp_string("ann").unwrap();
    p.exp_string("(1 rows)").unwrap();
    p.exp_string("ilion:shop> ").unwrap();

    // Up-arrow brings the last statement back.
    keys(&mut p, "\x1b[A");
    p.exp_string("SELECT * FROM users WHERE user_id = 1;")
        .unwrap();
    keys(&mut p, "\r");
    p.exp_string("(1 rows)").unwrap();
    p.exp_string("ilion:shop> ").unwrap();

    // An error is printed and the shell goes on.
    p.send_line("SELECT nope FROM users;").unwrap();
    p.exp_string("Undefined column name nope").unwrap();
    p.exp_string("ilion:shop> ").unwrap();
    p.send_line("EXIT").unwrap();
    p.exp_eof().unwrap();

    let remembered = history(&home);
    assert!(
        remembered.contains("SELECT * FROM users WHERE user_id = 1;"),
        "history kept across sessions: {remembered}"
    );
}

/// A script prints what cqlsh prints, byte for byte on stdout and stderr,
/// against the same node: DESCRIBE's listings (names in columns, grouped
/// under `Keyspace ...` headings when no keyspace is in use), elements and
/// cluster; empty and counted results; EXPAND, CONSISTENCY, SERIAL
/// CONSISTENCY and TRACING; errors with cqlsh's line numbers and forms.
#[test]
fn scripts_print_what_cqlsh_prints() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(Duration::from_secs(20));
    let port = node.ports.native;
    ok(
        port,
        "CREATE KEYSPACE sh WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};\
         CREATE KEYSPACE tb WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};\
         CREATE TABLE sh.t1 (k int PRIMARY KEY); CREATE TABLE sh.t2 (k int PRIMARY KEY);\
         CREATE TABLE tb.orders_with_a_rather_long_name (k int PRIMARY KEY);\
         CREATE TYPE tb.address (street text);\
         INSERT INTO sh.t1 (k) VALUES (1); INSERT INTO sh.t1 (k) VALUES (2);",
    );
    let script = dir.path().join("describe.cql");
    std::fs::write(
        &script,
        "DESCRIBE KEYSPACES;\nDESCRIBE TABLES;\nDESCRIBE TYPES;\nDESCRIBE CLUSTER;\n\
         DESCRIBE KEYSPACE tb;\nDESCRIBE TABLE sh.t1;\nDESCRIBE TYPE tb.address;\n\
         SELECT k FROM sh.t1 WHERE k = 99;\nSELECT count(*) FROM sh.t1;\n\
         EXPAND;\nEXPAND ON;\nSELECT k FROM sh.t1;\nSELECT k FROM sh.t1 WHERE k = 99;\nEXPAND;\nEXPAND OFF;\n\
         CONSISTENCY;\nCONSISTENCY QUORUM;\nSERIAL CONSISTENCY;\nTRACING;\nPAGING;\n\
         SELECT nothere FROM sh.t1;\nSELEC k FROM sh.t1;\n\nSELECT\n  nope FROM sh.t1;\n\
         USE sh;\nDESCRIBE TABLES;\nDESC KEYSPACES;\nSELECT k FROM t1 WHERE k = 1;\n",
    )
    .unwrap();
    let script = script.to_str().unwrap();
    let (code, ours, ours_err) = shell(port, &["-f", script], "");
    assert_eq!(code, 1, "the script has failing statements: {ours_err}");
    let theirs = Command::new(common::venv_bin("cqlsh"))
        .args(["127.0.0.1", &port.to_string(), "-f", script])
        .output()
        .expect("run cqlsh");
    let (theirs, theirs_err) = (
        String::from_utf8_lossy(&theirs.stdout),
        String::from_utf8_lossy(&theirs.stderr),
    );
    assert_eq!(ours, theirs, "ilion shell (left) and cqlsh (right) differ");
    assert_eq!(ours_err, theirs_err, "their errors differ");
    assert!(ours_err.contains(":26:InvalidRequest"), "{ours_err}");
    assert!(ours.contains("t1  t2"), "{ours}");
    assert!(ours.contains("Cluster: Test Cluster"), "{ours}");
}

/// The golden script: every type printed (nulls, empty collections, nested
/// UDTs, NaN and infinities, big decimals and varints, timestamps before
/// 1970), EXPAND, CONSISTENCY, PAGING, the DESCRIBE forms, SHOW HOST and
/// errors.
fn golden_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/shell.cql")
}

#[test]
fn the_golden_script_prints_exactly_what_cqlsh_prints() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(Duration::from_secs(20));
    let port = node.ports.native.to_string();
    let script = golden_script();
    let script = script.to_str().unwrap();
    let output = |program: &Path, args: &[&str]| -> String {
        let out = Command::new("timeout")
            .arg("120")
            .arg(program)
            .args(args)
            .env("CQLSH_NO_BUNDLED", "1")
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let cqlsh = output(
        &common::venv_bin("cqlsh"),
        &["127.0.0.1", &port, "-f", script],
    );
    let ours = output(
        &ilion_bin(),
        &["shell", "127.0.0.1", &port, "--no-color", "-f", script],
    );
    assert!(
        cqlsh.lines().count() > 150,
        "cqlsh ran the script:\n{cqlsh}"
    );
    let differing: Vec<String> = cqlsh
        .lines()
        .zip(ours.lines())
        .enumerate()
        .filter(|(_, (theirs, ours))| theirs != ours)
        .take(10)
        .map(|(n, (theirs, ours))| {
            format!("line {}:\n  cqlsh: {theirs:?}\n  ilion: {ours:?}", n + 1)
        })
        .collect();
    assert!(
        differing.is_empty() && cqlsh.lines().count() == ours.lines().count(),
        "{} lines from cqlsh, {} from ilion shell; first differences:\n{}",
        cqlsh.lines().count(),
        ours.lines().count(),
        differing.join("\n")
    );
}
