//! `ilion shell`: a cqlsh-style shell on the native protocol (the `scylla`
//! driver). Same flags, commands and output as cqlsh, so habits and scripts
//! carry over.
//!
//! - `mod.rs`: flags, the session, the read–run loop, shell commands;
//! - `input.rs`: statements out of lines (`;`, quotes, comments);
//! - `format.rs`: values and tables as cqlsh prints them;
//! - `copy.rs`: `COPY … TO/FROM` CSV;
//! - `complete.rs`: line editing helper (tab completion).
//!
//! Interactive when stdin is a terminal and neither `-e` nor `-f` is given;
//! otherwise statements run in order, errors are printed with
//! `source:line:` as cqlsh does, and the exit code is 1 if any failed.

mod complete;
mod copy;
mod describe;
mod format;
mod input;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgAction, Args};
use parking_lot::Mutex;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::response::{PagingState, PagingStateResponse};
use scylla::statement::unprepared::Statement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::Row;

use self::complete::{SchemaNames, ShellHelper};
use self::format::Cell;
use self::input::StatementBuffer;

/// Rows per page when PAGING is on.
const DEFAULT_PAGE_SIZE: i32 = 100;
/// Rows per request when paging is off (all pages are fetched).
const FETCH_SIZE: i32 = 5_000;
/// History lines kept between sessions.
const HISTORY_MAX: usize = 1_000;

/// `ilion shell [host [port]]`, with cqlsh's flags.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct ShellArgs {
    /// Host to connect to (default 127.0.0.1).
    pub host: Option<String>,
    /// CQL port (default 9042).
    pub port: Option<u16>,
    #[arg(short = 'u', long = "username")]
    pub username: Option<String>,
    #[arg(short = 'p', long = "password")]
    pub password: Option<String>,
    /// Keyspace to use at start.
    #[arg(short = 'k', long = "keyspace")]
    pub keyspace: Option<String>,
    /// Run these statements and exit.
    #[arg(short = 'e', long = "execute")]
    pub execute: Option<String>,
    /// Run the statements of this file and exit.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Seconds a request may take.
    #[arg(long = "request-timeout", default_value_t = 10)]
    pub request_timeout: u64,
    /// Seconds connecting may take.
    #[arg(long = "connect-timeout", default_value_t = 5)]
    pub connect_timeout: u64,
    /// Always use colours.
    #[arg(short = 'C', long = "color")]
    pub color: bool,
    /// Never use colours.
    #[arg(long = "no-color")]
    pub no_color: bool,
    /// Print help.
    #[arg(short = 'h', long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// Whether the shell goes on after a command.
enum Flow {
    Continue,
    Exit,
}

/// A failed statement, printed as cqlsh prints it.
struct Failure(String);

impl From<ExecutionError> for Failure {
    fn from(error: ExecutionError) -> Failure {
        Failure(describe_error(&error))
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        Failure(format!("{error:#}"))
    }
}

/// cqlsh's rendering of a server error: `Name: Error from server: code=2200
/// [Invalid query] message="…"`.
fn describe_error(error: &ExecutionError) -> String {
    let db = match error {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, message)) => {
            Some((db, message))
        }
        _ => None,
    };
    let Some((db, message)) = db else {
        return format!("NoHostAvailable: {error}");
    };
    let (name, code, summary) = match db {
        DbError::SyntaxError => ("SyntaxException", 0x2000, "Syntax error in CQL query"),
        DbError::Invalid => ("InvalidRequest", 0x2200, "Invalid query"),
        DbError::AlreadyExists { .. } => (
            "AlreadyExists",
            0x2400,
            "Query invalid because of configuration issue",
        ),
        DbError::Unauthorized => ("Unauthorized", 0x2100, "Unauthorized"),
        DbError::ConfigError => (
            "ConfigurationException",
            0x2300,
            "Query invalid because of configuration issue",
        ),
        DbError::Unavailable { .. } => ("Unavailable", 0x1000, "Unavailable exception"),
        DbError::Overloaded => ("OverloadedErrorMessage", 0x1001, "Server is overloaded"),
        DbError::WriteTimeout { .. } => (
            "WriteTimeout",
            0x1100,
            "Coordinator node timed out waiting for replica nodes' responses",
        ),
        DbError::ReadTimeout { .. } => (
            "ReadTimeout",
            0x1200,
            "Coordinator node timed out waiting for replica nodes' responses",
        ),
        DbError::ReadFailure { .. } => ("ReadFailure", 0x1300, "Replica(s) failed to execute read"),
        DbError::WriteFailure { .. } => {
            ("WriteFailure", 0x1500, "Replica(s) failed to execute write")
        }
        DbError::TruncateError => ("TruncateError", 0x1003, "Error during truncate"),
        DbError::ProtocolError => ("ProtocolException", 0x000a, "Protocol error"),
        DbError::AuthenticationError => ("AuthenticationFailed", 0x0100, "Bad credentials"),
        _ => ("ServerError", 0x0000, "Server error"),
    };
    // The Python driver turns most error messages into exceptions whose
    // text is the summary above; syntax, protocol, truncate and server
    // errors stay messages, which cqlsh prints bare.
    match db {
        DbError::SyntaxError
        | DbError::ProtocolError
        | DbError::TruncateError
        | DbError::ServerError => format!("{name}: {message}"),
        _ => {
            format!("{name}: Error from server: code={code:04x} [{summary}] message=\"{message}\"")
        }
    }
}

/// A failed DESCRIBE, as cqlsh prints it: the server's message alone.
fn describe_failure(error: &ExecutionError) -> Failure {
    match error {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(_, message)) => {
            Failure(message.clone())
        }
        other => Failure::from(other.clone()),
    }
}

/// The shell's settings and connection.
pub struct Shell {
    session: Session,
    consistency: Consistency,
    serial: SerialConsistency,
    /// Page size, or None with PAGING OFF. On by default, as in cqlsh;
    /// pages wait for the user only at a terminal.
    paging: Option<i32>,
    /// Reading a terminal (not a script, a pipe or `-e`).
    interactive: bool,
    expand: bool,
    color: bool,
    request_timeout: Duration,
    capture: Option<(PathBuf, std::fs::File)>,
    names: Arc<Mutex<SchemaNames>>,
    cluster_name: String,
    release_version: String,
    address: String,
    /// Any statement failed (the exit code of a script).
    failed: bool,
    /// TRACING ON: every statement is traced and its trace printed.
    tracing: bool,
}

/// Runs the shell; returns the process exit code.
pub async fn run(args: ShellArgs) -> i32 {
    match start(args).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Connection error: {error:#}");
            1
        }
    }
}

async fn start(args: ShellArgs) -> anyhow::Result<i32> {
    let host = args.host.clone().unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = args
        .port
        .unwrap_or(crate::config::defaults::NATIVE_TRANSPORT_PORT);
    let address = format!("{host}:{port}");
    let mut builder = SessionBuilder::new()
        .known_node(&address)
        .connection_timeout(Duration::from_secs(args.connect_timeout));
    if let Some(user) = &args.username {
        builder = builder.user(user, args.password.clone().unwrap_or_default());
    }
    let session = builder
        .build()
        .await
        .with_context(|| format!("could not connect to {address}"))?;
    let (cluster_name, release_version) = session
        .query_unpaged(
            "SELECT cluster_name, release_version FROM system.local",
            &[],
        )
        .await
        .ok()
        .and_then(|r| r.into_rows_result().ok())
        .and_then(|rows| rows.single_row::<(String, String)>().ok())
        .unwrap_or_default();
    let script = args.execute.is_some() || args.file.is_some();
    let interactive = !script && std::io::stdin().is_terminal();
    let color = (args.color || (interactive && std::io::stdout().is_terminal())) && !args.no_color;
    let mut shell = Shell {
        session,
        consistency: Consistency::One,
        serial: SerialConsistency::Serial,
        paging: Some(DEFAULT_PAGE_SIZE),
        interactive,
        expand: false,
        color,
        request_timeout: Duration::from_secs(args.request_timeout),
        capture: None,
        names: Arc::new(Mutex::new(SchemaNames::default())),
        cluster_name,
        release_version,
        address,
        failed: false,
        tracing: false,
    };
    shell.refresh_names().await;
    if let Some(keyspace) = &args.keyspace {
        shell
            .session
            .use_keyspace(keyspace.as_str(), false)
            .await
            .with_context(|| format!("cannot use keyspace {keyspace}"))?;
        shell.names.lock().keyspace = Some(keyspace.clone());
    }
    if let Some(text) = &args.execute {
        shell.run_text(text, "<string>").await;
    } else if let Some(path) = &args.file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        shell.run_text(&text, &path.display().to_string()).await;
    } else if interactive {
        shell.interact().await?;
    } else {
        let mut text = String::new();
        for line in std::io::stdin().lock().lines() {
            text.push_str(&line.context("cannot read stdin")?);
            text.push('\n');
        }
        shell.run_text(&text, "<stdin>").await;
    }
    Ok(i32::from(shell.failed))
}

impl Shell {
    /// Runs a script's statements in order; errors are printed with
    /// `source:line:` and the script goes on.
    async fn run_text(&mut self, text: &str, source: &str) {
        let mut buffer = StatementBuffer::default();
        let mut statements = Vec::new();
        for line in text.lines() {
            statements.extend(buffer.push_line(line));
        }
        statements.extend(buffer.finish());
        for (line, statement) in statements {
            match Box::pin(self.run_one(&statement)).await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Exit) => return,
                Err(Failure(message)) => {
                    self.failed = true;
                    // cqlsh names the line after the statement's end (it
                    // has read that line when it reports).
                    eprintln!("{source}:{}:{message}", line + 1);
                }
            }
        }
    }

    async fn interact(&mut self) -> anyhow::Result<()> {
        let config = rustyline::Config::builder()
            .max_history_size(HISTORY_MAX)
            .context("history size")?
            .auto_add_history(false)
            .build();
        let mut editor: rustyline::Editor<ShellHelper, rustyline::history::FileHistory> =
            rustyline::Editor::with_config(config).context("cannot start line editing")?;
        editor.set_helper(Some(ShellHelper::new(self.names.clone())));
        let history = history_path();
        if let Some(path) = &history {
            let _ = editor.load_history(path);
        }
        println!("Connected to {} at {}", self.cluster_name, self.address);
        println!("{}", self.version_line());
        println!("Use HELP for help.");
        let mut buffer = StatementBuffer::default();
        loop {
            let prompt = if buffer.is_empty() {
                match &self.names.lock().keyspace {
                    Some(keyspace) => format!("ilion:{keyspace}> "),
                    None => "ilion> ".to_owned(),
                }
            } else {
                "   ... ".to_owned()
            };
            let line = match editor.readline(&prompt) {
                Ok(line) => line,
                Err(rustyline::error::ReadlineError::Interrupted) => {
                    // Ctrl-C drops what was typed, as in cqlsh.
                    buffer = StatementBuffer::default();
                    continue;
                }
                Err(rustyline::error::ReadlineError::Eof) => break,
                Err(error) => return Err(error).context("cannot read input"),
            };
            if !line.trim().is_empty() {
                let _ = editor.add_history_entry(line.as_str());
            }
            let mut exit = false;
            for (_, statement) in buffer.push_line(&line) {
                match Box::pin(self.run_one(&statement)).await {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Exit) => exit = true,
                    Err(Failure(message)) => eprintln!("{message}"),
                }
                if exit {
                    break;
                }
            }
            if exit {
                break;
            }
        }
        if let Some(path) = &history {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = editor.save_history(path);
        }
        Ok(())
    }

    fn version_line(&self) -> String {
        format!(
            "[ilion shell {} | Cassandra {} | CQL spec 3.4.7 | Native protocol v4]",
            env!("CARGO_PKG_VERSION"),
            self.release_version
        )
    }

    /// Prints query output to stdout and, while capturing, to the capture file
    /// (without colours there).
    fn emit(&mut self, render: impl Fn(bool) -> String) {
        print!("{}", render(self.color));
        let _ = std::io::stdout().flush();
        if let Some((_, file)) = &mut self.capture {
            let _ = file.write_all(render(false).as_bytes());
        }
    }

    /// Runs one statement or shell command.
    async fn run_one(&mut self, statement: &str) -> Result<Flow, Failure> {
        let mut words = statement.split_whitespace();
        let first = words.next().unwrap_or_default().to_ascii_uppercase();
        let rest: Vec<&str> = words.collect();
        match first.as_str() {
            "EXIT" | "QUIT" => return Ok(Flow::Exit),
            "CONSISTENCY" => self.consistency_command(&rest)?,
            "SERIAL" => self.serial_command(&rest)?,
            "PAGING" => self.paging_command(&rest)?,
            "EXPAND" => self.expand_command(&rest)?,
            "TRACING" => self.tracing_command(&rest)?,
            "CAPTURE" => self.capture_command(statement)?,
            "SOURCE" => {
                let path = quoted_argument(statement).ok_or_else(|| {
                    Failure("Improper SOURCE command: give a file name in quotes".into())
                })?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Failure(format!("Could not open {path:?}: {e}")))?;
                Box::pin(self.run_text(&text, &path)).await;
            }
            "HELP" | "?" => println!("{}", help(rest.first().copied())),
            "SHOW" => match rest.first().map(|w| w.to_ascii_uppercase()).as_deref() {
                Some("VERSION") => println!("{}", self.version_line()),
                Some("HOST") => println!("Connected to {} at {}", self.cluster_name, self.address),
                _ => {
                    return Err(Failure(
                        "Improper SHOW command: use SHOW VERSION or SHOW HOST".into(),
                    ))
                }
            },
            "CLEAR" | "CLS" => print!("\x1b[2J\x1b[H"),
            "COPY" => {
                let summary = copy::run(self, statement).await?;
                println!("{summary}");
            }
            _ => self.run_cql(statement, &first).await?,
        }
        Ok(Flow::Continue)
    }

    /// `TRACING [ON|OFF]`, answered as cqlsh answers it.
    fn tracing_command(&mut self, rest: &[&str]) -> Result<(), Failure> {
        let state = |on: bool| if on { "ON" } else { "OFF" };
        let wanted = match rest.first().map(|w| w.to_ascii_uppercase()).as_deref() {
            None => {
                println!("TRACING is {}", state(self.tracing));
                return Ok(());
            }
            Some("ON") => true,
            Some("OFF") => false,
            Some(other) => {
                return Err(Failure(format!(
                    "Improper TRACING command: {other}; use TRACING ON or TRACING OFF"
                )))
            }
        };
        if wanted == self.tracing {
            println!("TRACING is already {}", state(wanted));
        } else {
            self.tracing = wanted;
            println!("TRACING set to {}", state(wanted));
        }
        Ok(())
    }

    /// Prints the trace of a traced statement as cqlsh does: the request,
    /// each step with its thread, and the request's completion.
    async fn print_trace(&mut self, id: uuid::Uuid) {
        let info = match self.session.get_tracing_info(&id).await {
            Ok(info) => info,
            Err(error) => {
                self.emit(|_| {
                    format!("\nStatement trace did not complete within the wait: {error}\n")
                });
                return;
            }
        };
        let client = info.client.map(|c| c.to_string()).unwrap_or_default();
        let coordinator = info.coordinator.map(|c| c.to_string()).unwrap_or_default();
        let started_ms = info.started_at.map_or(0, |t| t.0);
        let text_cell = |text: String| Cell {
            width: unicode_width::UnicodeWidthStr::width(text.as_str()),
            text,
            kind: format::Kind::Text,
        };
        let number_cell = |n: i64| Cell {
            width: n.to_string().len(),
            text: n.to_string(),
            kind: format::Kind::Number,
        };
        let row = |activity: String, at_us: i64, source: String, elapsed_us: i64| {
            vec![
                text_cell(activity),
                text_cell(trace_time(at_us)),
                text_cell(source),
                number_cell(elapsed_us),
                text_cell(client.clone()),
            ]
        };
        let mut rows = vec![row(
            info.request.clone().unwrap_or_default(),
            started_ms * 1000,
            coordinator.clone(),
            0,
        )];
        for event in &info.events {
            let activity = format!(
                "{} [{}]",
                event.activity.as_deref().unwrap_or_default(),
                event.thread.as_deref().unwrap_or_default()
            );
            let elapsed = i64::from(event.source_elapsed.unwrap_or(0));
            rows.push(row(
                activity,
                timeuuid_micros(event.event_id.as_bytes()),
                event.source.map(|s| s.to_string()).unwrap_or_default(),
                elapsed,
            ));
        }
        let duration = i64::from(info.duration.unwrap_or(0));
        rows.push(row(
            "Request complete".into(),
            started_ms * 1000 + duration,
            coordinator,
            duration,
        ));
        let names: Vec<String> = [
            "activity",
            "timestamp",
            "source",
            "source_elapsed",
            "client",
        ]
        .iter()
        .map(|n| (*n).to_owned())
        .collect();
        self.emit(|_| format!("\nTracing session: {id}\n\n"));
        self.emit(|color| format::table(&names, &rows, color));
        self.emit(|_| "\n".to_owned());
    }

    fn statement(&self, text: &str) -> Statement {
        let mut statement = Statement::new(text);
        statement.set_tracing(self.tracing);
        statement.set_consistency(self.consistency);
        statement.set_serial_consistency(Some(self.serial));
        statement.set_request_timeout(Some(self.request_timeout));
        statement
    }

    /// Sends a CQL statement (whose first word, upper-cased, is
    /// `first_word`) and prints its result.
    async fn run_cql(&mut self, text: &str, first_word: &str) -> Result<(), Failure> {
        let is_describe = matches!(first_word, "DESCRIBE" | "DESC");
        let shape = describe::Shape::of(text.split_whitespace().nth(1).unwrap_or_default());
        // DESCRIBE's rows, each as (column name, text), printed as cqlsh does.
        let mut described: Vec<Vec<(String, String)>> = Vec::new();
        let mut statement = self.statement(text);
        statement.set_page_size(self.paging.unwrap_or(FETCH_SIZE));
        let mut paging_state = PagingState::start();
        let mut names: Vec<String> = Vec::new();
        let mut rows: Vec<Vec<Cell>> = Vec::new();
        let mut printed = 0usize;
        let mut has_rows = false;
        let mut describe = Vec::new();
        // The server's warnings (the last page's, as the Python driver keeps them).
        let mut warnings: Vec<String>;
        // The trace of the statement (its last traced page), with TRACING ON.
        let mut tracing_id = None;
        loop {
            let (result, next) = self
                .session
                .query_single_page(statement.clone(), &[], paging_state)
                .await
                .map_err(|error| {
                    if is_describe {
                        describe_failure(&error)
                    } else {
                        Failure::from(error)
                    }
                })?;
            warnings = result.warnings().map(str::to_owned).collect();
            tracing_id = result.tracing_id().or(tracing_id);
            if let Ok(rows_result) = result.into_rows_result() {
                has_rows = true;
                names = rows_result
                    .column_specs()
                    .iter()
                    .map(|c| c.name().to_owned())
                    .collect();
                let describe_column = names
                    .iter()
                    .position(|n| n == "create_statement")
                    .filter(|_| is_describe);
                for row in rows_result
                    .rows::<Row>()
                    .map_err(|e| Failure(format!("cannot read the result: {e}")))?
                {
                    let row = row.map_err(|e| Failure(format!("cannot read a row: {e}")))?;
                    if is_describe && shape != describe::Shape::Statements {
                        described.push(
                            names
                                .iter()
                                .zip(&row.columns)
                                .map(|(name, value)| {
                                    let text = value
                                        .as_ref()
                                        .map(format::described_text)
                                        .unwrap_or_default();
                                    (name.clone(), text)
                                })
                                .collect(),
                        );
                        continue;
                    }
                    if let Some(i) = describe_column {
                        if let Some(Some(value)) = row.columns.get(i) {
                            describe.push(format::described_text(value));
                        }
                        continue;
                    }
                    rows.push(row.columns.iter().map(|v| Cell::of(v.as_ref())).collect());
                }
            }
            let more = match next {
                PagingStateResponse::HasMorePages { state } => Some(state),
                PagingStateResponse::NoMorePages => None,
            };
            if self.interactive
                && self.paging.is_some()
                && (more.is_some() || printed > 0)
                && !rows.is_empty()
            {
                // One page at a time, waiting between pages, as cqlsh does.
                printed += self.print_rows(&names, &std::mem::take(&mut rows), printed);
                if more.is_some() && !wait_for_more() {
                    break;
                }
            }
            match more {
                Some(state) => paging_state = state,
                None => break,
            }
        }
        if is_describe && shape != describe::Shape::Statements {
            let column = |row: &[(String, String)], name: &str| {
                row.iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let text = match shape {
                describe::Shape::Keyspaces => describe::keyspaces(
                    &described
                        .iter()
                        .map(|r| column(r, "name"))
                        .collect::<Vec<_>>(),
                ),
                describe::Shape::NamesByKeyspace => {
                    let rows: Vec<(String, String)> = described
                        .iter()
                        .map(|r| (column(r, "keyspace_name"), column(r, "name")))
                        .collect();
                    let current = self.names.lock().keyspace.clone();
                    describe::names_by_keyspace(&rows, current.as_deref())
                }
                describe::Shape::Cluster | describe::Shape::Statements => described
                    .iter()
                    .map(|r| {
                        describe::cluster(
                            &column(r, "cluster"),
                            &column(r, "partitioner"),
                            &column(r, "snitch"),
                        )
                    })
                    .collect(),
            };
            self.emit(|_| text.clone());
        } else if !describe.is_empty() {
            let text = format!("\n{}\n", describe.join("\n\n"));
            self.emit(|_| text.clone());
        } else if has_rows {
            let total = printed + self.print_rows(&names, &rows, printed);
            // cqlsh ends an empty table, and EXPAND's blocks, with one
            // more blank line before the count.
            let gap = if total == 0 || self.expand {
                "\n\n"
            } else {
                "\n"
            };
            let count = format!("{gap}({total} rows)\n");
            self.emit(|_| count.clone());
        }
        // After the result, as cqlsh prints them (not for USE or DESCRIBE).
        if !warnings.is_empty() && !is_describe && first_word != "USE" {
            let mut text = String::from("\nWarnings :\n");
            for warning in &warnings {
                text.push_str(warning);
                text.push_str("\n\n");
            }
            self.emit(|_| text.clone());
        }
        if let Some(id) = tracing_id {
            self.print_trace(id).await;
        }
        if matches!(first_word, "CREATE" | "ALTER" | "DROP") {
            self.refresh_names().await;
        }
        if first_word == "USE" {
            self.names.lock().keyspace = self.session.get_keyspace().map(|k| k.to_string());
        }
        Ok(())
    }

    /// Prints rows (a table, or EXPAND blocks); returns how many.
    fn print_rows(&mut self, names: &[String], rows: &[Vec<Cell>], before: usize) -> usize {
        if rows.is_empty() && before > 0 {
            return 0;
        }
        // An empty result is drawn as a table even with EXPAND on (cqlsh).
        let expand = self.expand && !rows.is_empty();
        self.emit(|color| {
            if expand {
                format::expanded(names, rows, color, before + 1)
            } else {
                format::table(names, rows, color)
            }
        });
        rows.len()
    }

    async fn refresh_names(&self) {
        if let Ok(fresh) = SchemaNames::load(&self.session).await {
            let mut names = self.names.lock();
            let keyspace = names.keyspace.take();
            *names = fresh;
            names.keyspace = keyspace;
        }
    }

    fn consistency_command(&mut self, rest: &[&str]) -> Result<(), Failure> {
        match rest.first() {
            None => println!(
                "Current consistency level is {}.",
                crate::consistency::name(self.consistency)
            ),
            Some(level) => {
                self.consistency = crate::consistency::parse(level).ok_or_else(|| {
                    Failure(format!(
                        "Improper CONSISTENCY command: {level} is not a consistency level; use one of {}",
                        crate::consistency::names()
                    ))
                })?;
                println!(
                    "Consistency level set to {}.",
                    crate::consistency::name(self.consistency)
                );
            }
        }
        Ok(())
    }

    fn serial_command(&mut self, rest: &[&str]) -> Result<(), Failure> {
        if !rest
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("CONSISTENCY"))
        {
            return Err(Failure("Improper SERIAL CONSISTENCY command".into()));
        }
        match rest.get(1) {
            None => println!(
                "Current serial consistency level is {}.",
                crate::consistency::serial_name(self.serial)
            ),
            Some(level) => {
                self.serial = crate::consistency::parse_serial(level).ok_or_else(|| {
                    Failure(format!(
                        "Improper SERIAL CONSISTENCY command: {level} is not a serial consistency level; use SERIAL or LOCAL_SERIAL"
                    ))
                })?;
                println!(
                    "Serial consistency level set to {}.",
                    crate::consistency::serial_name(self.serial)
                );
            }
        }
        Ok(())
    }

    fn paging_command(&mut self, rest: &[&str]) -> Result<(), Failure> {
        match rest.first().map(|w| w.to_ascii_uppercase()).as_deref() {
            None => match self.paging {
                Some(size) => println!("PAGING is ON\nPage size: {size}"),
                None => println!("PAGING is OFF"),
            },
            Some("ON") => {
                let size = self.paging.unwrap_or(DEFAULT_PAGE_SIZE);
                self.paging = Some(size);
                println!("PAGING set to ON\nPage size: {size}");
            }
            Some("OFF") => {
                self.paging = None;
                println!("PAGING set to OFF");
            }
            Some(number) => {
                let size: i32 = number.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    Failure(format!(
                        "Improper PAGING command: {number} is not ON, OFF or a page size"
                    ))
                })?;
                self.paging = Some(size);
                println!("Page size: {size}");
            }
        }
        Ok(())
    }

    fn expand_command(&mut self, rest: &[&str]) -> Result<(), Failure> {
        match rest.first().map(|w| w.to_ascii_uppercase()).as_deref() {
            None if self.expand => println!("EXPAND is ON"),
            None => println!("EXPAND is OFF"),
            Some("ON") => {
                self.expand = true;
                println!("EXPAND set to ON");
            }
            Some("OFF") => {
                self.expand = false;
                println!("EXPAND set to OFF");
            }
            Some(other) => {
                return Err(Failure(format!(
                    "Improper EXPAND command: {other} is not ON or OFF"
                )))
            }
        }
        Ok(())
    }

    fn capture_command(&mut self, statement: &str) -> Result<(), Failure> {
        let argument = statement.split_whitespace().nth(1);
        match (
            argument.map(|w| w.to_ascii_uppercase()).as_deref(),
            &self.capture,
        ) {
            (None, Some((path, _))) => println!("Currently capturing to '{}'.", path.display()),
            (None, None) => println!("Currently not capturing query output."),
            (Some("OFF"), Some((path, _))) => {
                println!("Stopped capture. Output saved to '{}'.", path.display());
                self.capture = None;
            }
            (Some("OFF"), None) => println!("Not currently capturing output."),
            (Some(_), _) => {
                let path = quoted_argument(statement).ok_or_else(|| {
                    Failure("Improper CAPTURE command: give a file name in quotes, or OFF".into())
                })?;
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| Failure(format!("Could not open '{path}' for writing: {e}")))?;
                println!("Now capturing query output to '{path}'.");
                self.capture = Some((PathBuf::from(path), file));
            }
        }
        Ok(())
    }
}

/// Waits for Enter between pages; false when the user typed `q`.
fn wait_for_more() -> bool {
    print!("---MORE---");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    !answer.trim().eq_ignore_ascii_case("q")
}

/// The argument in single quotes of `SOURCE 'file'` or `CAPTURE 'file'`
/// (a leading `~` is the home directory).
fn quoted_argument(statement: &str) -> Option<String> {
    let start = statement.find('\'')?;
    let end = statement[start + 1..].find('\'')? + start + 1;
    let text = &statement[start + 1..end];
    Some(match (text.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest).display().to_string(),
        _ => text.to_owned(),
    })
}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".ilion").join("shell_history"))
}

fn help(topic: Option<&str>) -> String {
    match topic.map(str::to_ascii_uppercase).as_deref() {
        None => "\nShell commands (end at the end of the line):\n\
                 ========================================\n\
                 CAPTURE  CLEAR  CONSISTENCY  COPY  EXIT  EXPAND  HELP  PAGING  QUIT\n\
                 SERIAL CONSISTENCY  SHOW  SOURCE  TRACING\n\n\
                 CQL statements (end with ;):\n\
                 ============================\n\
                 ALTER  BATCH  CREATE  DELETE  DESCRIBE  DROP  GRANT  INSERT  LIST\n\
                 REVOKE  SELECT  TRUNCATE  UPDATE  USE\n\n\
                 HELP <topic> tells more."
            .to_owned(),
        Some("CONSISTENCY") => "CONSISTENCY [level]: show or set the consistency level of later requests (ONE by default).".into(),
        Some("SERIAL") => "SERIAL CONSISTENCY [SERIAL|LOCAL_SERIAL]: show or set the serial consistency level.".into(),
        Some("PAGING") => "PAGING [ON|OFF|<page size>]: show rows a page at a time (interactive sessions).".into(),
        Some("EXPAND") => "EXPAND [ON|OFF]: print each row as a block of column/value lines.".into(),
        Some("COPY") => "COPY <table> [(columns)] TO|FROM '<file.csv>'|STDOUT|STDIN [WITH HEADER = true AND DELIMITER = ',' AND NULL = '' AND MAXROWS = n]".into(),
        Some("CAPTURE") => "CAPTURE '<file>' | CAPTURE OFF: also write query output to a file.".into(),
        Some("SOURCE") => "SOURCE '<file>': run the statements of a file.".into(),
        Some("TRACING") => "TRACING [ON|OFF]: trace every later statement and print its trace (from system_traces) after its result.".into(),
        Some(other) => format!("No help for {other}; HELP lists the topics."),
    }
}

/// A time in microseconds since the epoch as cqlsh prints trace times
/// (UTC, to the microsecond).
fn trace_time(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let sub = micros.rem_euclid(1_000_000);
    match chrono::DateTime::from_timestamp(secs, (sub * 1000) as u32) {
        Some(at) => at.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        None => micros.to_string(),
    }
}

/// The time of a version 1 (time) UUID, in microseconds since the epoch.
fn timeuuid_micros(bytes: &[u8; 16]) -> i64 {
    let time_low = u64::from(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
    let time_mid = u64::from(u16::from_be_bytes([bytes[4], bytes[5]]));
    let time_hi = u64::from(u16::from_be_bytes([bytes[6], bytes[7]]) & 0x0fff);
    let ticks = (time_hi << 48) | (time_mid << 32) | time_low;
    // 100 ns intervals since 1582-10-15.
    (ticks.wrapping_sub(0x01b2_1dd2_1381_4000) / 10) as i64
}
