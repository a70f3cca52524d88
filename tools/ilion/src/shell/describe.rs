//! How the shell prints the answers of server-side `DESCRIBE`, as cqlsh 6
//! does: `DESCRIBE KEYSPACES` as names in columns, `DESCRIBE TABLES` (and
//! TYPES, FUNCTIONS, AGGREGATES) as names in columns under a
//! `Keyspace <name>` heading per keyspace (the heading only when no keyspace
//! is in use), `DESCRIBE CLUSTER` as `Cluster:`/`Partitioner:`/`Snitch:`
//! lines, and everything else as its `CREATE` statements.

/// The width names are laid out in, as cqlsh's (Python's `cmd` module's).
const DISPLAY_WIDTH: usize = 80;

/// What a `DESCRIBE` statement asks for, by how cqlsh prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `DESCRIBE KEYSPACES`.
    Keyspaces,
    /// `DESCRIBE TABLES | COLUMNFAMILIES | TYPES | FUNCTIONS | AGGREGATES`.
    NamesByKeyspace,
    /// `DESCRIBE CLUSTER`.
    Cluster,
    /// An element or a schema: its `CREATE` statements.
    Statements,
}

impl Shape {
    /// The shape of `DESCRIBE <word> ...`, from its second word.
    pub fn of(second_word: &str) -> Shape {
        match second_word.to_ascii_lowercase().trim_end_matches(';') {
            "keyspaces" => Shape::Keyspaces,
            "tables" | "columnfamilies" | "types" | "functions" | "aggregates" => {
                Shape::NamesByKeyspace
            }
            "cluster" => Shape::Cluster,
            _ => Shape::Statements,
        }
    }
}

/// `names` laid out in as few rows as fit [`DISPLAY_WIDTH`], column by
/// column, two spaces apart (Python's `cmd.Cmd.columnize`).
pub fn columnize(names: &[String]) -> String {
    let widths = |rows: usize| -> Vec<usize> {
        names
            .chunks(rows)
            .map(|column| column.iter().map(|n| n.chars().count()).max().unwrap_or(0))
            .collect()
    };
    match names {
        [] => return "<empty>\n".to_owned(),
        [one] => return format!("{one}\n"),
        _ => {}
    }
    let rows = (1..names.len())
        .find(|&rows| {
            let total: usize = widths(rows).iter().map(|w| w + 2).sum();
            total.saturating_sub(2) <= DISPLAY_WIDTH
        })
        .unwrap_or(names.len());
    let column_widths = if rows == names.len() {
        vec![0]
    } else {
        widths(rows)
    };
    let mut out = String::new();
    for row in 0..rows {
        let mut texts: Vec<&str> = (0..column_widths.len())
            .map(|column| names.get(row + rows * column).map_or("", String::as_str))
            .collect();
        while texts.last().is_some_and(|t| t.is_empty()) {
            texts.pop();
        }
        let line: Vec<String> = texts
            .iter()
            .zip(&column_widths)
            .map(|(text, width)| format!("{text:<width$}"))
            .collect();
        out.push_str(&line.join("  "));
        out.push('\n');
    }
    out
}

/// `DESCRIBE KEYSPACES`: a blank line, the names, a blank line.
pub fn keyspaces(names: &[String]) -> String {
    format!("\n{}\n", columnize(names))
}

/// `DESCRIBE TABLES` and the like: `(keyspace, name)` rows grouped by
/// keyspace, in the order they came.
pub fn names_by_keyspace(rows: &[(String, String)], current_keyspace: Option<&str>) -> String {
    let mut out = String::new();
    let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
    for (keyspace, name) in rows {
        match groups.last_mut() {
            Some((last, names)) if last == keyspace => names.push(name.clone()),
            _ => groups.push((keyspace, vec![name.clone()])),
        }
    }
    for (keyspace, names) in &groups {
        out.push('\n');
        if current_keyspace.is_none() {
            out.push_str(&format!("Keyspace {keyspace}\n"));
            out.push_str(&format!(
                "---------{}\n",
                "-".repeat(keyspace.chars().count())
            ));
        }
        out.push_str(&columnize(names));
    }
    if !groups.is_empty() {
        out.push('\n');
    }
    out
}

/// `DESCRIBE CLUSTER`.
pub fn cluster(name: &str, partitioner: &str, snitch: &str) -> String {
    format!("\nCluster: {name}\nPartitioner: {partitioner}\nSnitch: {snitch}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn names_fill_columns_as_cqlsh_lays_them_out() {
        let keyspaces = names(&[
            "sh",
            "system",
            "system_auth",
            "system_distributed",
            "system_schema",
            "system_traces",
            "tb",
            "u",
        ]);
        assert_eq!(
            columnize(&keyspaces),
            "sh  system  system_auth  system_distributed  system_schema  system_traces  tb  u\n"
        );
        let many: Vec<String> = (0..30).map(|i| format!("table_{i:02}")).collect();
        let text = columnize(&many);
        assert!(
            text.lines().all(|l| l.chars().count() <= DISPLAY_WIDTH),
            "{text}"
        );
        assert!(text.lines().count() > 1);
        // Column-major: the second name starts the second line.
        assert!(
            text.lines()
                .nth(1)
                .is_some_and(|l| l.starts_with("table_01")),
            "{text}"
        );
        assert_eq!(columnize(&names(&["only"])), "only\n");
        assert_eq!(columnize(&[]), "<empty>\n");
    }

    #[test]
    fn tables_are_grouped_under_their_keyspace() {
        let rows = vec![
            ("a".to_owned(), "t1".to_owned()),
            ("a".to_owned(), "t2".to_owned()),
            ("bb".to_owned(), "x".to_owned()),
        ];
        assert_eq!(
            names_by_keyspace(&rows, None),
            "\nKeyspace a\n----------\nt1  t2\n\nKeyspace bb\n-----------\nx\n\n"
        );
        assert_eq!(names_by_keyspace(&rows[..2], Some("a")), "\nt1  t2\n\n");
    }
}
