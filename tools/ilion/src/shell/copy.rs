//! `COPY table [(columns)] TO|FROM 'file.csv'|STDOUT|STDIN [WITH …]`, as in
//! cqlsh: values in the CSV are written as cqlsh prints them (collections
//! as CQL literals), so a file exported by COPY TO imports back with COPY
//! FROM. Options: HEADER, DELIMITER, QUOTE, NULL, MAXROWS.
//!
//! COPY FROM turns each record into an INSERT of CQL literals (strings
//! quoted, numbers and the like checked for their characters) and runs up
//! to [`IN_FLIGHT`] at once. A bad record is counted and reported; the rest
//! are imported.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use scylla::frame::response::result::{ColumnType, NativeType};
use scylla::response::{PagingState, PagingStateResponse};
use scylla::value::Row;

use super::{format, Failure, Shell};

/// INSERTs in flight at once during COPY FROM.
const IN_FLIGHT: usize = 32;
/// Failed records reported one by one before the rest are only counted.
const ERRORS_SHOWN: usize = 10;
/// Rows fetched per page during COPY TO.
const PAGE_ROWS: i32 = 5_000;

#[derive(Debug, PartialEq)]
enum Direction {
    To,
    From,
}

#[derive(Debug, PartialEq)]
struct CopyCommand {
    table: String,
    columns: Vec<String>,
    direction: Direction,
    /// None for STDOUT/STDIN.
    file: Option<String>,
    header: bool,
    delimiter: u8,
    quote: u8,
    null: String,
    max_rows: Option<u64>,
}

fn bad(message: impl Into<String>) -> Failure {
    Failure(format!("Improper COPY command: {}", message.into()))
}

/// Parses the text after `COPY`.
fn parse(statement: &str) -> Result<CopyCommand, Failure> {
    let rest = statement
        .trim()
        .get(4..)
        .ok_or_else(|| bad("give a table"))?
        .trim_start();
    let table_end = rest
        .find(|c: char| c.is_whitespace() || c == '(')
        .ok_or_else(|| bad("give TO or FROM after the table"))?;
    let table = rest[..table_end].to_owned();
    let mut rest = rest[table_end..].trim_start();
    let mut columns = Vec::new();
    if let Some(inner) = rest.strip_prefix('(') {
        let close = inner
            .find(')')
            .ok_or_else(|| bad("the column list has no ')'"))?;
        columns = inner[..close]
            .split(',')
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect();
        rest = inner[close + 1..].trim_start();
    }
    let (word, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let direction = match word.to_ascii_uppercase().as_str() {
        "TO" => Direction::To,
        "FROM" => Direction::From,
        other => return Err(bad(format!("expected TO or FROM, found {other:?}"))),
    };
    let after = after.trim_start();
    let (file, options) = if let Some(quoted) = after.strip_prefix('\'') {
        let end = quoted
            .find('\'')
            .ok_or_else(|| bad("the file name has no closing quote"))?;
        (Some(quoted[..end].to_owned()), &quoted[end + 1..])
    } else {
        let (word, options) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
        match word.to_ascii_uppercase().as_str() {
            "STDOUT" if direction == Direction::To => (None, options),
            "STDIN" if direction == Direction::From => (None, options),
            _ => return Err(bad("give a file name in quotes, or STDOUT/STDIN")),
        }
    };
    let mut command = CopyCommand {
        table,
        columns,
        direction,
        file,
        header: false,
        delimiter: b',',
        quote: b'"',
        null: String::new(),
        max_rows: None,
    };
    let options = options.trim();
    if options.is_empty() {
        return Ok(command);
    }
    let options = options
        .get(..4)
        .filter(|w| w.eq_ignore_ascii_case("WITH"))
        .map(|_| &options[4..])
        .ok_or_else(|| {
            bad(format!(
                "expected WITH before the options, found {options:?}"
            ))
        })?;
    for option in split_and(options) {
        let (name, value) = option
            .split_once('=')
            .ok_or_else(|| bad(format!("option {option:?} has no '='")))?;
        let value = value.trim().trim_matches('\'').to_owned();
        let single_byte = |what: &str| {
            let bytes = value.as_bytes();
            match bytes {
                [b] => Ok(*b),
                _ => Err(bad(format!("{what} must be one character, not {value:?}"))),
            }
        };
        match name.trim().to_ascii_uppercase().as_str() {
            "HEADER" => {
                command.header = matches!(value.to_ascii_lowercase().as_str(), "true" | "yes" | "1")
            }
            "DELIMITER" => command.delimiter = single_byte("DELIMITER")?,
            "QUOTE" => command.quote = single_byte("QUOTE")?,
            "NULL" => command.null = value,
            "MAXROWS" => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| bad(format!("MAXROWS {value:?} is not a number")))?;
                command.max_rows = u64::try_from(n).ok();
            }
            other => return Err(Failure(format!("Unrecognized COPY options: {other}"))),
        }
    }
    Ok(command)
}

/// Splits `a = 1 AND b = 'x and y'` at the ANDs outside quotes.
fn split_and(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let words: Vec<&str> = text.split(' ').collect();
    for word in words {
        if !quoted && word.eq_ignore_ascii_case("AND") {
            parts.push(std::mem::take(&mut current));
            continue;
        }
        quoted ^= word.matches('\'').count() % 2 == 1;
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Runs a COPY; returns the summary line.
pub async fn run(shell: &mut Shell, statement: &str) -> Result<String, Failure> {
    let command = parse(statement)?;
    let column_list = if command.columns.is_empty() {
        "*".to_owned()
    } else {
        command.columns.join(", ")
    };
    let select = format!("SELECT {column_list} FROM {}", command.table);
    match command.direction {
        Direction::To => copy_to(shell, &command, &select).await,
        Direction::From => copy_from(shell, &command, &select).await,
    }
}

/// A progress line on stderr, at most once a second, when it is a terminal.
struct Progress {
    started: Instant,
    last: Instant,
    show: bool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            started: Instant::now(),
            last: Instant::now(),
            show: std::io::stderr().is_terminal(),
        }
    }

    fn tick(&mut self, rows: u64) {
        if self.show && self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
            eprint!(
                "\rProcessed: {rows} rows; Avg. rate: {:.0} rows/s",
                rows as f64 / seconds
            );
        }
    }

    fn seconds(&self) -> f64 {
        if self.show {
            eprintln!();
        }
        self.started.elapsed().as_secs_f64()
    }
}

async fn copy_to(
    shell: &mut Shell,
    command: &CopyCommand,
    select: &str,
) -> Result<String, Failure> {
    let sink: Box<dyn Write> = match &command.file {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .map_err(|e| Failure(format!("Could not open {path:?} for writing: {e}")))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let mut writer = csv::WriterBuilder::new()
        .delimiter(command.delimiter)
        .quote(command.quote)
        .from_writer(sink);
    let mut statement = shell.statement(select);
    statement.set_page_size(PAGE_ROWS);
    let mut paging_state = PagingState::start();
    let mut progress = Progress::new();
    let mut rows = 0u64;
    let mut header_written = !command.header;
    let limit = command.max_rows.unwrap_or(u64::MAX);
    'pages: loop {
        let (result, next) = shell
            .session
            .query_single_page(statement.clone(), &[], paging_state)
            .await?;
        let result = result
            .into_rows_result()
            .map_err(|e| Failure(format!("COPY TO needs rows: {e}")))?;
        if !header_written {
            let names: Vec<&str> = result.column_specs().iter().map(|c| c.name()).collect();
            writer.write_record(&names).map_err(csv_failure)?;
            header_written = true;
        }
        for row in result
            .rows::<Row>()
            .map_err(|e| Failure(format!("cannot read the result: {e}")))?
        {
            if rows >= limit {
                break 'pages;
            }
            let row = row.map_err(|e| Failure(format!("cannot read a row: {e}")))?;
            let fields: Vec<String> = row
                .columns
                .iter()
                .map(|v| {
                    v.as_ref()
                        .map_or_else(|| command.null.clone(), |v| format::value_text(v, false))
                })
                .collect();
            writer.write_record(&fields).map_err(csv_failure)?;
            rows += 1;
            progress.tick(rows);
        }
        match next {
            PagingStateResponse::HasMorePages { state } => paging_state = state,
            PagingStateResponse::NoMorePages => break,
        }
    }
    writer
        .flush()
        .map_err(|e| Failure(format!("cannot write the CSV: {e}")))?;
    let seconds = progress.seconds();
    let files = if command.file.is_some() { 1 } else { 0 };
    Ok(format!(
        "{rows} rows exported to {files} files in {seconds:.3} seconds."
    ))
}

fn csv_failure(error: csv::Error) -> Failure {
    Failure(format!("cannot write the CSV: {error}"))
}

/// How a CSV field becomes a CQL literal for a column type.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Literal {
    /// Quoted as a string: text, timestamps, dates, addresses.
    Quoted,
    /// Numbers, booleans, uuids, blobs, durations: checked, then as written.
    Bare,
    /// Collections, tuples, UDTs: already CQL literals in the file.
    Structured,
}

fn literal_kind(column: &ColumnType<'_>) -> Literal {
    match column {
        ColumnType::Native(
            NativeType::Ascii
            | NativeType::Text
            | NativeType::Timestamp
            | NativeType::Date
            | NativeType::Time
            | NativeType::Inet,
        ) => Literal::Quoted,
        ColumnType::Native(_) => Literal::Bare,
        _ => Literal::Structured,
    }
}

/// One CSV field as a CQL literal.
fn literal(field: &str, kind: Literal, null: &str) -> Result<String, String> {
    if field == null {
        return Ok("null".to_owned());
    }
    match kind {
        Literal::Quoted => Ok(format!("'{}'", field.replace('\'', "''"))),
        Literal::Bare => {
            let ok = !field.is_empty()
                && field
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.'));
            if ok {
                Ok(field.to_owned())
            } else {
                Err(format!("{field:?} is not a valid value for this column"))
            }
        }
        Literal::Structured => Ok(field.to_owned()),
    }
}

async fn copy_from(
    shell: &mut Shell,
    command: &CopyCommand,
    select: &str,
) -> Result<String, Failure> {
    // The columns and their types, from the table's metadata.
    let probe = shell
        .session
        .query_unpaged(format!("{select} LIMIT 1"), &[])
        .await?
        .into_rows_result()
        .map_err(|e| Failure(format!("cannot read the columns of {}: {e}", command.table)))?;
    let columns: Vec<(String, Literal)> = probe
        .column_specs()
        .iter()
        .map(|c| (c.name().to_owned(), literal_kind(c.typ())))
        .collect();
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let insert = format!(
        "INSERT INTO {} ({}) VALUES (",
        command.table,
        names.join(", ")
    );

    let source: Box<dyn std::io::Read> = match &command.file {
        Some(path) => Box::new(
            std::fs::File::open(path)
                .map_err(|e| Failure(format!("Could not open {path:?} for reading: {e}")))?,
        ),
        None => Box::new(std::io::stdin()),
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(command.delimiter)
        .quote(command.quote)
        .has_headers(command.header)
        .flexible(true)
        .from_reader(source);
    let limit = command.max_rows.unwrap_or(u64::MAX);
    let mut statements = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for (index, record) in reader.records().enumerate() {
        if statements.len() as u64 >= limit {
            break;
        }
        let line = index + 1 + usize::from(command.header);
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                failures.push(format!("record {line}: {error}"));
                continue;
            }
        };
        if record.len() != columns.len() {
            failures.push(format!(
                "record {line}: {} fields for {} columns",
                record.len(),
                columns.len()
            ));
            continue;
        }
        let values: Result<Vec<String>, String> = record
            .iter()
            .zip(&columns)
            .map(|(field, (_, kind))| literal(field, *kind, &command.null))
            .collect();
        match values {
            Ok(values) => statements.push((line, format!("{insert}{})", values.join(", ")))),
            Err(reason) => failures.push(format!("record {line}: {reason}")),
        }
    }

    let mut progress = Progress::new();
    let mut imported = 0u64;
    let shell: &Shell = shell;
    let mut results = stream::iter(statements)
        .map(|(line, text)| {
            let statement = shell.statement(&text);
            async move { (line, shell.session.query_unpaged(statement, &[]).await) }
        })
        .buffer_unordered(IN_FLIGHT);
    while let Some((line, result)) = results.next().await {
        match result {
            Ok(_) => imported += 1,
            Err(error) => {
                failures.push(format!("record {line}: {}", super::describe_error(&error)))
            }
        }
        progress.tick(imported);
    }
    let seconds = progress.seconds();
    let files = if command.file.is_some() { 1 } else { 0 };
    let summary = format!(
        "{imported} rows imported from {files} files in {seconds:.3} seconds ({:.0} rows/s; {} skipped).",
        imported as f64 / seconds.max(1e-9),
        failures.len()
    );
    if failures.is_empty() {
        return Ok(summary);
    }
    let mut shown: Vec<String> = failures.iter().take(ERRORS_SHOWN).cloned().collect();
    if failures.len() > ERRORS_SHOWN {
        shown.push(format!("… and {} more", failures.len() - ERRORS_SHOWN));
    }
    println!("{summary}");
    Err(Failure(format!(
        "Failed to import {} rows:\n  {}",
        failures.len(),
        shown.join("\n  ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_commands_parse_like_cqlsh() {
        let command = parse(
            "COPY shop.users (id, name) TO '/tmp/u.csv' WITH HEADER = true AND DELIMITER = '|'",
        )
        .unwrap_or_else(|Failure(m)| panic!("{m}"));
        assert_eq!(command.table, "shop.users");
        assert_eq!(command.columns, vec!["id", "name"]);
        assert_eq!(command.direction, Direction::To);
        assert_eq!(command.file.as_deref(), Some("/tmp/u.csv"));
        assert!(command.header);
        assert_eq!(command.delimiter, b'|');
        let command = parse("copy users from STDIN with null = 'NULL' and maxrows = 5")
            .unwrap_or_else(|Failure(m)| panic!("{m}"));
        assert_eq!(
            (command.file, command.null, command.max_rows),
            (None, "NULL".to_owned(), Some(5))
        );
        for bad in [
            "COPY users",
            "COPY users TO",
            "COPY users SIDEWAYS 'f'",
            "COPY t TO 'f' WITH COLOUR = red",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fields_become_literals() {
        assert_eq!(literal("it's", Literal::Quoted, ""), Ok("'it''s'".into()));
        assert_eq!(literal("", Literal::Quoted, ""), Ok("null".into()));
        assert_eq!(literal("-1.5e3", Literal::Bare, ""), Ok("-1.5e3".into()));
        assert!(literal("1); DROP TABLE t", Literal::Bare, "").is_err());
        assert_eq!(
            literal("{'a': 1}", Literal::Structured, ""),
            Ok("{'a': 1}".into())
        );
    }
}
