//! Turning typed or scripted text into statements: CQL statements end at a
//! `;` outside quotes and comments (and may span lines); shell commands
//! (CONSISTENCY, PAGING, EXIT, …) end at the end of their line, as in cqlsh.

/// Words that start a shell command rather than a CQL statement. DESCRIBE
/// and USE are CQL, sent to the server; COPY and SOURCE are run here but,
/// like cqlsh, end at the end of their line.
const SHELL_COMMANDS: [&str; 14] = [
    "CONSISTENCY",
    "SERIAL",
    "PAGING",
    "EXPAND",
    "TRACING",
    "SOURCE",
    "CAPTURE",
    "HELP",
    "EXIT",
    "QUIT",
    "COPY",
    "SHOW",
    "CLEAR",
    "CLS",
];

/// Whether a line (with nothing pending before it) is a shell command.
pub fn is_shell_command(line: &str) -> bool {
    let first = line
        .split(|c: char| c.is_whitespace() || c == ';')
        .next()
        .unwrap_or_default();
    SHELL_COMMANDS
        .iter()
        .any(|word| word.eq_ignore_ascii_case(first))
        || line.trim() == "?"
}

/// Accumulates text and hands out complete statements, each with the line
/// (from 1) on which it ended (its `;`, or the end of a shell command's
/// line; the last line for a statement the input ends without `;`).
#[derive(Debug, Default)]
pub struct StatementBuffer {
    pending: String,
    lines_seen: usize,
}

/// Where the scanner is inside the pending text.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scan {
    Code,
    Single,
    Double,
    Dollar,
    LineComment,
    BlockComment,
}

impl StatementBuffer {
    /// True when no statement is half-typed.
    pub fn is_empty(&self) -> bool {
        self.pending.trim().is_empty()
    }

    /// Takes one line; returns the statements it completed (without their
    /// `;`), each with the number of this line.
    pub fn push_line(&mut self, line: &str) -> Vec<(usize, String)> {
        self.lines_seen += 1;
        if self.is_empty() {
            self.pending.clear();
            if is_shell_command(line) {
                // A shell command ends at its `;` or at the end of the line;
                // what follows its `;` is read as more input on this line.
                let (command, rest) = match statement_end(line) {
                    Some(end) => (&line[..end], &line[end + 1..]),
                    None => (line, ""),
                };
                let mut done = vec![(self.lines_seen, command.trim().to_owned())];
                if !rest.trim().is_empty() {
                    self.lines_seen -= 1;
                    done.extend(self.push_line(rest));
                }
                return done;
            }
        }
        self.pending.push_str(line);
        self.pending.push('\n');
        let mut done = Vec::new();
        while let Some(end) = statement_end(&self.pending) {
            let statement: String = self.pending[..end].trim().to_owned();
            self.pending = self.pending[end + 1..].to_owned();
            if !strip_comments(&statement).trim().is_empty() {
                done.push((self.lines_seen, statement));
            }
        }
        done
    }

    /// What is left when the input ends (a statement without `;`).
    pub fn finish(&mut self) -> Option<(usize, String)> {
        let rest = std::mem::take(&mut self.pending);
        let text = rest.trim();
        (!strip_comments(text).trim().is_empty()).then(|| (self.lines_seen, text.to_owned()))
    }
}

/// Byte offset of the first `;` that ends a statement, if any.
fn statement_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut state = Scan::Code;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        match state {
            Scan::Code => match (b, next) {
                (b';', _) => return Some(i),
                (b'\'', _) => state = Scan::Single,
                (b'"', _) => state = Scan::Double,
                (b'$', Some(b'$')) => {
                    state = Scan::Dollar;
                    i += 1;
                }
                (b'-', Some(b'-')) | (b'/', Some(b'/')) => state = Scan::LineComment,
                (b'/', Some(b'*')) => {
                    state = Scan::BlockComment;
                    i += 1;
                }
                _ => {}
            },
            // A doubled quote inside a string is an escaped quote: leaving
            // and re-entering the string handles it.
            Scan::Single if b == b'\'' => state = Scan::Code,
            Scan::Double if b == b'"' => state = Scan::Code,
            Scan::Dollar if b == b'$' && next == Some(b'$') => {
                state = Scan::Code;
                i += 1;
            }
            Scan::LineComment if b == b'\n' => state = Scan::Code,
            Scan::BlockComment if b == b'*' && next == Some(b'/') => {
                state = Scan::Code;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The text without `--`, `//` and `/* */` comments (strings kept).
pub fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut state = Scan::Code;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        match state {
            Scan::Code => match (c, next) {
                ('-', Some('-')) | ('/', Some('/')) => state = Scan::LineComment,
                ('/', Some('*')) => {
                    chars.next();
                    state = Scan::BlockComment;
                }
                _ => {
                    match c {
                        '\'' => state = Scan::Single,
                        '"' => state = Scan::Double,
                        _ => {}
                    }
                    out.push(c);
                }
            },
            Scan::LineComment => {
                if c == '\n' {
                    state = Scan::Code;
                    out.push(c);
                }
            }
            Scan::BlockComment => {
                if c == '*' && next == Some('/') {
                    chars.next();
                    state = Scan::Code;
                    out.push(' ');
                }
            }
            Scan::Single | Scan::Double | Scan::Dollar => {
                if (state == Scan::Single && c == '\'') || (state == Scan::Double && c == '"') {
                    state = Scan::Code;
                }
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(lines: &[&str]) -> Vec<(usize, String)> {
        let mut buffer = StatementBuffer::default();
        let mut out: Vec<(usize, String)> =
            lines.iter().flat_map(|l| buffer.push_line(l)).collect();
        out.extend(buffer.finish());
        out
    }

    #[test]
    fn statements_span_lines_and_end_at_semicolons() {
        let got = all(&[
            "CREATE TABLE t (",
            "  k int PRIMARY KEY",
            ");  SELECT * FROM t; INSERT INTO t (k)",
            "VALUES (1);",
        ]);
        assert_eq!(
            got,
            vec![
                (3, "CREATE TABLE t (\n  k int PRIMARY KEY\n)".to_owned()),
                (3, "SELECT * FROM t".to_owned()),
                (4, "INSERT INTO t (k)\nVALUES (1)".to_owned()),
            ]
        );
    }

    #[test]
    fn semicolons_in_strings_and_comments_do_not_end_statements() {
        let got = all(&[
            "INSERT INTO t (k, v) VALUES (1, 'a;b''c;'); -- trailing; comment",
            "SELECT \"we;ird\" FROM t /* ; */ WHERE v = $$x;y$$;",
            "// only a comment;",
        ]);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].1, "INSERT INTO t (k, v) VALUES (1, 'a;b''c;')");
        assert!(got[1].1.ends_with("$$x;y$$"), "{got:?}");
    }

    #[test]
    fn shell_commands_end_with_their_line() {
        let got = all(&[
            "consistency QUORUM",
            "paging off; SELECT 1",
            "FROM t;",
            "EXIT",
        ]);
        assert_eq!(
            got,
            vec![
                (1, "consistency QUORUM".to_owned()),
                (2, "paging off".to_owned()),
                (3, "SELECT 1\nFROM t".to_owned()),
                (4, "EXIT".to_owned()),
            ]
        );
        // A shell word inside a pending statement is just text.
        let got = all(&["SELECT *", "HELP;"]);
        assert_eq!(got, vec![(2, "SELECT *\nHELP".to_owned())]);
    }

    #[test]
    fn a_last_statement_without_semicolon_is_kept() {
        assert_eq!(
            all(&["SELECT 1 FROM t"]),
            vec![(1, "SELECT 1 FROM t".to_owned())]
        );
        assert!(all(&["-- nothing", ""]).is_empty());
    }
}
