//! The live screen of `tessera top`, drawn with ratatui on crossterm: the services table, sorted
//! by a column the keys choose, and the subscriptions' lag, with figures that need looking at
//! in colour.

use std::time::Duration;

use ratatui::Frame;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};
use tokio::sync::watch;

use super::overview::{Column, Health, Overview, ServiceRow, Sort};

/// What the screen shows of the readings: the newest overview, and the newest failure to read
/// (the overview before it stays on screen).
#[derive(Clone, Debug, Default)]
pub struct Latest {
    pub overview: Overview,
    /// When the overview was taken, for the title.
    pub at: String,
    pub error: Option<String>,
}

/// The screen's own state: what it reads from and how it sorts.
#[derive(Debug)]
pub struct View {
    pub source: String,
    pub note: Option<String>,
    pub every: Duration,
    pub sort: Sort,
}

#[derive(Debug, PartialEq)]
pub enum Action {
    Quit,
    Stay,
}

impl View {
    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Action::Quit,
            // Raw mode turns Ctrl-C into a key rather than a signal.
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => return Action::Quit,
            KeyCode::Char('s') => self.sort = Sort::by(self.sort.column.next()),
            KeyCode::Char('r') => self.sort.ascending = !self.sort.ascending,
            KeyCode::Char(digit @ '1'..='9') => {
                let index = digit as usize - '1' as usize;
                if let Some(column) = Column::ALL.get(index) {
                    self.sort = Sort::by(*column);
                }
            }
            _ => {}
        }
        Action::Stay
    }

    fn sort_mark(&self) -> &'static str {
        if self.sort.ascending { "▲" } else { "▼" }
    }

    pub fn draw(&self, frame: &mut Frame, latest: &Latest) {
        let overview = &latest.overview;
        let services_height = u16::try_from(overview.services.len()).unwrap_or(u16::MAX).saturating_add(3);
        let [title, status, services, subscriptions, help] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Length(services_height),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .areas(frame.area());

        let every = self.every.as_secs_f64();
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled("tessera top", Style::new().add_modifier(Modifier::BOLD)),
                Span::raw(format!("  {}  every {every:.1} s  {}", self.source, latest.at)),
            ])),
            title,
        );
        let status_line = match (&latest.error, &self.note) {
            (Some(error), _) => {
                Line::styled(format!("last reading failed: {error}"), Style::new().fg(Color::Red))
            }
            (None, Some(note)) => Line::styled(note.clone(), Style::new().fg(Color::Yellow)),
            (None, None) if overview.interval_seconds.is_none() => {
                Line::styled("rates after the second reading", Style::new().fg(Color::DarkGray))
            }
            (None, None) => Line::default(),
        };
        frame.render_widget(Paragraph::new(status_line), status);

        let mut rows = overview.services.clone();
        self.sort.apply(&mut rows);
        frame.render_widget(self.services_table(&rows), services);
        frame.render_widget(subscriptions_table(overview), subscriptions);

        let key = Style::new().add_modifier(Modifier::BOLD);
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled("q", key),
                Span::raw(" quit   "),
                Span::styled("s", key),
                Span::raw(" next column   "),
                Span::styled("1-8", key),
                Span::raw(" sort by column   "),
                Span::styled("r", key),
                Span::raw(" reverse   "),
                Span::raw(format!("sorted by {} {}", self.sort.column.title(), self.sort_mark())),
            ])),
            help,
        );
    }

    fn services_table(&self, rows: &[ServiceRow]) -> Table<'static> {
        let header = Row::new(Column::ALL.iter().enumerate().map(|(index, column)| {
            let mut title = format!("{} {}", index + 1, column.title());
            let mut style = Style::new().add_modifier(Modifier::BOLD);
            if *column == self.sort.column {
                title = format!("{title} {}", self.sort_mark());
                style = style.fg(Color::Cyan).add_modifier(Modifier::UNDERLINED);
            }
            aligned(*column, Line::styled(title, style))
        }));
        let body = rows.iter().map(|row| {
            Row::new(
                Column::ALL
                    .iter()
                    .map(|column| aligned(*column, Line::styled(column.cell(row), cell_style(*column, row)))),
            )
        });
        Table::new(body, Column::ALL.map(|column| Constraint::Length(width(column))))
            .header(header)
            .column_spacing(2)
            .block(Block::bordered().title(" services "))
    }
}

fn width(column: Column) -> u16 {
    match column {
        Column::Service => 14,
        Column::Health => 10,
        _ => 12,
    }
}

fn aligned(column: Column, line: Line<'static>) -> Cell<'static> {
    Cell::from(if matches!(column, Column::Service | Column::Health) { line } else { line.right_aligned() })
}

/// Lag under a second is a subscription keeping up (messages are grouped and committed
/// together); over ten, something is stuck.
const LAG_SLOW: f64 = 1.0;
const LAG_STUCK: f64 = 10.0;

/// Red for what is failing or lost, yellow for what is waiting.
pub fn cell_style(column: Column, row: &ServiceRow) -> Style {
    let positive = |value: Option<f64>| value.is_some_and(|v| v > 0.0);
    let red = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
    let yellow = Style::new().fg(Color::Yellow);
    match column {
        Column::Health => match row.health {
            Health::Up => Style::new().fg(Color::Green),
            Health::Failing | Health::Down => red,
            Health::Unknown => Style::new().fg(Color::DarkGray),
        },
        Column::Errors if positive(row.errors_per_second) => red,
        Column::Dlq if positive(row.dead_letters) => red,
        Column::Outbox if positive(row.outbox_unsent) => yellow,
        Column::Lag if row.lag_seconds.is_some_and(|s| s >= LAG_STUCK) => red,
        Column::Lag if row.lag_seconds.is_some_and(|s| s >= LAG_SLOW) => yellow,
        _ => Style::new(),
    }
}

fn subscriptions_table(overview: &Overview) -> Table<'static> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let header = Row::new([
        Cell::from(Line::styled("subscription", bold)),
        Cell::from(Line::styled("lag (s)", bold).right_aligned()),
        Cell::from(Line::styled("pending", bold).right_aligned()),
    ]);
    let mut subscriptions = overview.subscriptions.clone();
    subscriptions
        .sort_by(|a, b| b.lag_seconds.total_cmp(&a.lag_seconds).then_with(|| a.consumer.cmp(&b.consumer)));
    let rows = subscriptions.into_iter().map(|subscription| {
        let style = if subscription.lag_seconds >= LAG_STUCK {
            Style::new().fg(Color::Red)
        } else if subscription.lag_seconds >= LAG_SLOW {
            Style::new().fg(Color::Yellow)
        } else {
            Style::new()
        };
        Row::new([
            Cell::from(subscription.consumer),
            Cell::from(Line::styled(format!("{:.3}", subscription.lag_seconds), style).right_aligned()),
            Cell::from(
                Line::raw(subscription.pending_messages.map_or("-".to_owned(), |p| format!("{p:.0}")))
                    .right_aligned(),
            ),
        ])
    });
    Table::new(rows, [Constraint::Length(34), Constraint::Length(10), Constraint::Length(10)])
        .header(header)
        .column_spacing(2)
        .block(Block::bordered().title(" subscriptions, slowest first "))
}

/// Puts the terminal back (raw mode off, the main screen) however `run` ends; a panic is
/// covered by the hook ratatui installs.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Draws `latest` as it changes until a key says quit. Blocking: run it off the async workers.
pub fn run(mut view: View, latest: watch::Receiver<Latest>) -> anyhow::Result<()> {
    let _restore = Restore;
    let mut terminal = ratatui::try_init()?;
    loop {
        terminal.draw(|frame| view.draw(frame, &latest.borrow()))?;
        // Short enough that a new reading shows without waiting for a key.
        if event::poll(Duration::from_millis(200))?
            && let Event::Key(key) = event::read()?
            && key.kind == KeyEventKind::Press
            && view.on_key(key) == Action::Quit
        {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;

    fn row(service: &str, errors: f64, dead: f64) -> ServiceRow {
        ServiceRow {
            service: service.to_owned(),
            health: Health::Up,
            requests_per_second: Some(4.0),
            errors_per_second: Some(errors),
            p99_ms: Some(2.5),
            outbox_unsent: Some(0.0),
            dead_letters: Some(dead),
            lag_seconds: Some(0.01),
        }
    }

    fn view() -> View {
        View {
            source: "test".into(),
            note: None,
            every: Duration::from_secs(1),
            sort: Sort::by(Column::Service),
        }
    }

    fn screen(view: &View, latest: &Latest) -> ratatui::buffer::Buffer {
        let mut terminal = Terminal::new(TestBackend::new(150, 20)).expect("a test terminal");
        terminal.draw(|frame| view.draw(frame, latest)).expect("drawn");
        terminal.backend().buffer().clone()
    }

    fn text(buffer: &ratatui::buffer::Buffer) -> Vec<String> {
        (0..buffer.area.height)
            .map(|y| (0..buffer.area.width).map(|x| buffer[(x, y)].symbol()).collect::<String>())
            .collect()
    }

    #[test]
    fn errors_and_dead_letters_are_red_and_the_sorted_column_is_marked() {
        let latest = Latest {
            overview: Overview {
                interval_seconds: Some(1.0),
                services: vec![row("orders", 0.0, 0.0), row("payments", 1.5, 2.0)],
                subscriptions: Vec::new(),
            },
            ..Latest::default()
        };
        let mut view = view();
        let buffer = screen(&view, &latest);
        let lines = text(&buffer);
        assert!(lines.iter().any(|l| l.contains("1 service ▲")), "{lines:#?}");
        let colour = |service: &str, figure: &str| {
            let (y, line) = lines.iter().enumerate().find(|(_, l)| l.contains(service)).expect("the row");
            let skipped = figure.len() - figure.trim_start().len();
            let x = line[..line.find(figure).expect("the figure")].chars().count() + skipped;
            buffer[(u16::try_from(x).expect("x"), u16::try_from(y).expect("y"))].fg
        };
        assert_eq!(colour("payments", "1.5"), Color::Red, "errors");
        assert_eq!(colour("payments", " 2 "), Color::Red, "dead letters");
        assert_eq!(colour("orders", "0.0"), Color::Reset, "no errors, no colour");
        assert_eq!(colour("orders", "up"), Color::Green);

        assert_eq!(view.on_key(KeyEvent::from(KeyCode::Char('s'))), Action::Stay);
        let lines = text(&screen(&view, &latest));
        assert!(lines.iter().any(|l| l.contains("2 health ▲")), "s moves to the next column: {lines:#?}");
        view.on_key(KeyEvent::from(KeyCode::Char('4')));
        let lines = text(&screen(&view, &latest));
        assert!(lines.iter().any(|l| l.contains("4 errors/s ▼")), "{lines:#?}");
        let first = lines.iter().position(|l| l.contains("payments")).expect("payments");
        assert!(
            first < lines.iter().position(|l| l.contains("orders")).expect("orders"),
            "most errors first"
        );
        view.on_key(KeyEvent::from(KeyCode::Char('r')));
        assert!(text(&screen(&view, &latest)).iter().any(|l| l.contains("4 errors/s ▲")));
    }

    #[test]
    fn q_escape_and_control_c_quit() {
        let mut view = view();
        assert_eq!(view.on_key(KeyEvent::from(KeyCode::Char('q'))), Action::Quit);
        assert_eq!(view.on_key(KeyEvent::from(KeyCode::Esc)), Action::Quit);
        assert_eq!(view.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)), Action::Quit);
        assert_eq!(view.on_key(KeyEvent::from(KeyCode::Char('c'))), Action::Stay);
    }
}
