//! Tab completion for the interactive shell: CQL and shell keywords,
//! keyspaces, tables (of the current keyspace, or after `keyspace.`), and
//! the columns of the tables the line names. Schema names are read from
//! `system_schema` at start and after every DDL.

use std::sync::Arc;

use parking_lot::Mutex;
use rustyline::completion::{Completer, Pair};
use rustyline::{Context, Helper, Highlighter, Hinter, Validator};
use scylla::client::session::Session;

const KEYWORDS: &[&str] = &[
    "ADD",
    "ALL",
    "ALLOW",
    "ALTER",
    "AND",
    "APPLY",
    "AS",
    "ASC",
    "BATCH",
    "BEGIN",
    "BY",
    "CAPTURE",
    "CLEAR",
    "CLUSTERING",
    "COMPACT",
    "CONSISTENCY",
    "CONTAINS",
    "COPY",
    "CREATE",
    "DELETE",
    "DESC",
    "DESCRIBE",
    "DISTINCT",
    "DROP",
    "DURABLE_WRITES",
    "EXISTS",
    "EXIT",
    "EXPAND",
    "FILTERING",
    "FROM",
    "FROZEN",
    "GRANT",
    "HELP",
    "IF",
    "IN",
    "INSERT",
    "INTO",
    "JSON",
    "KEY",
    "KEYSPACE",
    "KEYSPACES",
    "LIMIT",
    "LIST",
    "LOGGED",
    "MAP",
    "NOT",
    "NULL",
    "OFF",
    "ON",
    "ORDER",
    "PAGING",
    "PASSWORD",
    "PER",
    "PARTITION",
    "PRIMARY",
    "QUIT",
    "RENAME",
    "REPLICATION",
    "REVOKE",
    "ROLE",
    "ROLES",
    "SCHEMA",
    "SELECT",
    "SERIAL",
    "SET",
    "SHOW",
    "SOURCE",
    "STATIC",
    "TABLE",
    "TABLES",
    "TIMESTAMP",
    "TO",
    "TOKEN",
    "TRACING",
    "TRUNCATE",
    "TTL",
    "TUPLE",
    "TYPE",
    "TYPES",
    "UNLOGGED",
    "UPDATE",
    "USE",
    "USING",
    "VALUES",
    "WHERE",
    "WITH",
    "WRITETIME",
];

/// The schema names completion offers.
#[derive(Debug, Default, Clone)]
pub struct SchemaNames {
    /// The keyspace of `USE`, for unqualified table names.
    pub keyspace: Option<String>,
    pub keyspaces: Vec<String>,
    /// (keyspace, table)
    pub tables: Vec<(String, String)>,
    /// (keyspace, table, column)
    pub columns: Vec<(String, String, String)>,
}

impl SchemaNames {
    pub async fn load(session: &Session) -> anyhow::Result<SchemaNames> {
        let keyspaces = session
            .query_unpaged("SELECT keyspace_name FROM system_schema.keyspaces", &[])
            .await?
            .into_rows_result()?
            .rows::<(String,)>()?
            .map(|r| r.map(|(k,)| k))
            .collect::<Result<Vec<_>, _>>()?;
        let tables = session
            .query_unpaged(
                "SELECT keyspace_name, table_name FROM system_schema.tables",
                &[],
            )
            .await?
            .into_rows_result()?
            .rows::<(String, String)>()?
            .collect::<Result<Vec<_>, _>>()?;
        let columns = session
            .query_unpaged(
                "SELECT keyspace_name, table_name, column_name FROM system_schema.columns",
                &[],
            )
            .await?
            .into_rows_result()?
            .rows::<(String, String, String)>()?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SchemaNames {
            keyspace: None,
            keyspaces,
            tables,
            columns,
        })
    }

    /// Words that may come at the cursor, given the line before it.
    fn candidates(&self, before: &str) -> Vec<String> {
        if let Some(keyspace) = before.strip_suffix('.').and_then(last_identifier) {
            return self
                .tables
                .iter()
                .filter(|(k, _)| k == keyspace)
                .map(|(_, t)| t.clone())
                .collect();
        }
        let previous = before.split_whitespace().next_back().unwrap_or_default();
        let is = |word: &str| previous.eq_ignore_ascii_case(word);
        if is("USE") || is("KEYSPACE") {
            return self.keyspaces.clone();
        }
        let table_expected = ["FROM", "INTO", "UPDATE", "TABLE", "TRUNCATE"]
            .iter()
            .any(|w| is(w));
        let mut words: Vec<String> = if table_expected {
            Vec::new()
        } else {
            KEYWORDS.iter().map(|k| (*k).to_owned()).collect()
        };
        words.extend(self.keyspaces.iter().cloned());
        if let Some(current) = &self.keyspace {
            words.extend(
                self.tables
                    .iter()
                    .filter(|(k, _)| k == current)
                    .map(|(_, t)| t.clone()),
            );
        }
        for (keyspace, table) in self.named_tables(before) {
            words.extend(
                self.columns
                    .iter()
                    .filter(|(k, t, _)| *k == keyspace && *t == table)
                    .map(|(_, _, c)| c.clone()),
            );
        }
        words
    }

    /// Tables the line names after FROM, INTO, UPDATE or TABLE.
    fn named_tables(&self, line: &str) -> Vec<(String, String)> {
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
            .filter(|w| !w.is_empty())
            .collect();
        words
            .windows(2)
            .filter(|pair| {
                ["FROM", "INTO", "UPDATE", "TABLE"]
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(pair[0]))
            })
            .filter_map(|pair| match pair[1].split_once('.') {
                Some((k, t)) => Some((k.to_owned(), t.to_owned())),
                None => self.keyspace.clone().map(|k| (k, pair[1].to_owned())),
            })
            .collect()
    }
}

/// The identifier that ends `text`, if any.
fn last_identifier(text: &str) -> Option<&str> {
    let start = text
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    let word = &text[start..];
    (!word.is_empty()).then_some(word)
}

/// The line editor's helper: completion only.
#[derive(Helper, Hinter, Highlighter, Validator)]
pub struct ShellHelper {
    names: Arc<Mutex<SchemaNames>>,
}

impl ShellHelper {
    pub fn new(names: Arc<Mutex<SchemaNames>>) -> ShellHelper {
        ShellHelper { names }
    }
}

/// Completions of the word before `pos` in `line`: (start of the word, words).
pub fn complete_at(names: &SchemaNames, line: &str, pos: usize) -> (usize, Vec<String>) {
    let before = line.get(..pos).unwrap_or(line);
    let start = before
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    let prefix = &before[start..];
    let lowercase = !prefix.is_empty() && prefix.chars().all(|c| !c.is_uppercase());
    let mut found: Vec<String> = names
        .candidates(&before[..start])
        .into_iter()
        .filter(|w| {
            w.get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        })
        .map(|w| {
            let is_keyword = KEYWORDS.contains(&w.as_str());
            if is_keyword && lowercase {
                w.to_lowercase()
            } else {
                w
            }
        })
        .collect();
    found.sort();
    found.dedup();
    (start, found)
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, words) = complete_at(&self.names.lock(), line, pos);
        Ok((
            start,
            words
                .into_iter()
                .map(|w| Pair {
                    display: w.clone(),
                    replacement: w,
                })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> SchemaNames {
        SchemaNames {
            keyspace: Some("shop".into()),
            keyspaces: vec!["shop".into(), "system".into()],
            tables: vec![
                ("shop".into(), "users".into()),
                ("shop".into(), "orders".into()),
                ("system".into(), "local".into()),
            ],
            columns: vec![
                ("shop".into(), "users".into(), "user_id".into()),
                ("shop".into(), "users".into(), "name".into()),
                ("shop".into(), "orders".into(), "order_id".into()),
            ],
        }
    }

    #[test]
    fn keywords_keep_the_typed_case() {
        assert_eq!(complete_at(&names(), "SEL", 3), (0, vec!["SELECT".into()]));
        assert_eq!(complete_at(&names(), "sel", 3), (0, vec!["select".into()]));
    }

    #[test]
    fn tables_of_the_current_or_named_keyspace() {
        assert_eq!(
            complete_at(&names(), "SELECT * FROM us", 16).1,
            vec!["users".to_owned()]
        );
        assert_eq!(
            complete_at(&names(), "SELECT * FROM system.lo", 23),
            (21, vec!["local".into()])
        );
        assert_eq!(
            complete_at(&names(), "USE sh", 6).1,
            vec!["shop".to_owned()]
        );
        // After FROM only tables and keyspaces, not the keyword USE.
        assert_eq!(
            complete_at(&names(), "SELECT * FROM use", 17).1,
            vec!["users".to_owned()]
        );
    }

    #[test]
    fn columns_of_the_tables_in_the_line() {
        let line = "SELECT * FROM users WHERE us";
        assert_eq!(
            complete_at(&names(), line, line.len()).1,
            ["use", "user_id", "users", "using"]
                .map(str::to_owned)
                .to_vec()
        );
        let line = "INSERT INTO shop.orders (ord";
        assert!(complete_at(&names(), line, line.len())
            .1
            .contains(&"order_id".to_owned()));
    }
}
