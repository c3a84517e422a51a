//! The interactive screen (ratatui): refreshes every interval, keys to change service and sort.
//! The terminal is restored however the view ends.

use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, Wrap};
use ratatui::{DefaultTerminal, Frame};

use super::{SORTS, Section, Snapshot, fetch, headline, sections};
use crate::monitoring_api::MonitoringClient;

/// Runs until `q`.
pub(crate) fn run(
    client: &MonitoringClient,
    service: Option<String>,
    sort: String,
    interval: Duration,
) -> anyhow::Result<()> {
    let mut terminal = ratatui::init();
    let result = run_loop(&mut terminal, client, service, sort, interval);
    ratatui::restore();
    result
}

fn run_loop(
    terminal: &mut DefaultTerminal,
    client: &MonitoringClient,
    mut service: Option<String>,
    mut sort: String,
    interval: Duration,
) -> anyhow::Result<()> {
    let mut snapshot: Option<Snapshot> = None;
    let mut error: Option<String> = None;
    let mut next_refresh = Instant::now();
    loop {
        if Instant::now() >= next_refresh {
            match fetch(client, service.as_deref(), &sort) {
                Ok(fresh) => {
                    service = fresh
                        .selected
                        .map(|index| fresh.services[index].name.clone());
                    snapshot = Some(fresh);
                    error = None;
                }
                Err(failure) => error = Some(format!("{failure:#}")),
            }
            next_refresh = Instant::now() + interval;
            terminal.draw(|frame| draw(frame, snapshot.as_ref(), error.as_deref()))?;
        }
        let wait = next_refresh.saturating_duration_since(Instant::now());
        if !event::poll(wait)? {
            continue;
        }
        let Event::Key(key) = event::read()? else {
            terminal.draw(|frame| draw(frame, snapshot.as_ref(), error.as_deref()))?;
            continue;
        };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        let step: isize = match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => return Ok(()),
            KeyCode::Tab | KeyCode::Right => 1,
            KeyCode::BackTab | KeyCode::Left => -1,
            KeyCode::Char('s') => {
                let index = SORTS.iter().position(|known| *known == sort).unwrap_or(0);
                sort = SORTS[(index + 1) % SORTS.len()].to_owned();
                next_refresh = Instant::now();
                continue;
            }
            _ => continue,
        };
        if let Some(current) = &snapshot {
            let count = current.services.len() as isize;
            if count > 0 {
                let index = current.selected.map_or(0, |i| i as isize);
                let next = (index + step).rem_euclid(count) as usize;
                service = Some(current.services[next].name.clone());
                next_refresh = Instant::now();
            }
        }
    }
}

fn draw(frame: &mut Frame, snapshot: Option<&Snapshot>, error: Option<&str>) {
    let Some(snapshot) = snapshot else {
        let text = error.unwrap_or("reading the monitoring server…");
        frame.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: true })
                .block(Block::bordered().title(" mm top ")),
            frame.area(),
        );
        return;
    };
    let sections = sections(snapshot);
    let mut constraints = vec![Constraint::Length(2)];
    for section in &sections {
        constraints.push(Constraint::Min((section.rows.len().min(12) + 3) as u16));
    }
    constraints.push(Constraint::Length(1));
    let areas = Layout::vertical(constraints).split(frame.area());
    let mut head =
        vec![Line::from(headline(snapshot)).style(Style::new().add_modifier(Modifier::BOLD))];
    if let Some(error) = error {
        head.push(
            Line::from(format!("last refresh failed: {error}")).style(Style::new().fg(Color::Red)),
        );
    }
    frame.render_widget(Paragraph::new(head), areas[0]);
    for (index, section) in sections.iter().enumerate() {
        frame.render_widget(table(section), areas[index + 1]);
    }
    frame.render_widget(
        Paragraph::new("Tab/→ next service · Shift-Tab/← previous · s sort connections · q quit")
            .style(Style::new().fg(Color::DarkGray)),
        areas[areas.len() - 1],
    );
}

fn table(section: &Section) -> Table<'_> {
    let widths: Vec<Constraint> = (0..section.headers.len())
        .map(|column| {
            let widest = section
                .rows
                .iter()
                .map(|row| row.get(column).map_or(0, |cell| cell.chars().count()))
                .chain([section.headers[column].len()])
                .max()
                .unwrap_or(0);
            Constraint::Length(widest.min(40) as u16)
        })
        .collect();
    let rows = section.rows.iter().map(|row| {
        Row::new(row.iter().enumerate().map(|(column, cell)| {
            if section.numeric[column] {
                Line::from(cell.as_str()).right_aligned()
            } else {
                Line::from(cell.as_str())
            }
        }))
    });
    Table::new(rows, widths)
        .header(
            Row::new(section.headers.iter().copied())
                .style(Style::new().add_modifier(Modifier::BOLD).fg(Color::Cyan)),
        )
        .column_spacing(2)
        .block(
            Block::default()
                .borders(Borders::TOP)
                .title(format!(" {} ", section.title)),
        )
}
