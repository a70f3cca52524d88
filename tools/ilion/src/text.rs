//! Plain-text tables for the command-line tools.

use std::fmt::Write as _;

/// Rows as left-aligned columns separated by two spaces, without trailing
/// blanks (the shape of nodetool's and ccm's tables).
pub fn columns(rows: &[Vec<String>]) -> String {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..width)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_align_and_trim() {
        let rows = vec![
            vec!["a".to_owned(), "bb".to_owned(), "c".to_owned()],
            vec!["dddd".to_owned(), "e".to_owned(), String::new()],
        ];
        assert_eq!(super::columns(&rows), "a     bb  c\ndddd  e\n");
    }
}
