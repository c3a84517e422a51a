//! `mm top --once`: one screen as plain text.

use std::io::Write;

use super::{Section, Snapshot, headline, sections};

/// Prints the screen to stdout.
pub(crate) fn print(snapshot: &Snapshot) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(render(snapshot).as_bytes())?;
    out.flush()
}

/// The screen as text: the headline, then each section's title and table.
pub(crate) fn render(snapshot: &Snapshot) -> String {
    let mut text = headline(snapshot);
    text.push('\n');
    for section in sections(snapshot) {
        text.push('\n');
        text.push_str(&section.title);
        text.push('\n');
        text.push_str(&table(&section));
    }
    text
}

/// Aligned columns; numbers to the right.
fn table(section: &Section) -> String {
    let widths: Vec<usize> = (0..section.headers.len())
        .map(|column| {
            section
                .rows
                .iter()
                .map(|row| row.get(column).map_or(0, |cell| cell.chars().count()))
                .chain([section.headers[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| -> String {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(column, cell)| {
                let width = widths[column];
                if section.numeric[column] {
                    format!("{cell:>width$}")
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        format!("{}\n", parts.join("  ").trim_end())
    };
    let headers: Vec<String> = section.headers.iter().map(|h| (*h).to_owned()).collect();
    let mut text = line(&headers);
    if section.rows.is_empty() {
        text.push_str("(none)\n");
    }
    for row in &section.rows {
        text.push_str(&line(row));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_table() {
        let section = Section {
            title: "T".into(),
            headers: vec!["name", "n"],
            numeric: vec![false, true],
            rows: vec![
                vec!["a".into(), "1".into()],
                vec!["long".into(), "100".into()],
            ],
        };
        assert_eq!(table(&section), "name    n\na       1\nlong  100\n");
    }
}
