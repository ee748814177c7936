//! Parse errors for cron expressions.

use std::fmt;
use std::ops::Range;

/// One of the five fields of a cron expression, in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CronField {
    /// Minute of the hour, 0–59.
    Minute,
    /// Hour of the day, 0–23.
    Hour,
    /// Day of the month, 1–31.
    DayOfMonth,
    /// Month of the year, 1–12 or `JAN`–`DEC`.
    Month,
    /// Day of the week, 0–7 (0 and 7 are Sunday) or `SUN`–`SAT`.
    DayOfWeek,
}

impl CronField {
    /// The five fields in the order they appear in an expression.
    pub const ALL: [CronField; 5] = [
        CronField::Minute,
        CronField::Hour,
        CronField::DayOfMonth,
        CronField::Month,
        CronField::DayOfWeek,
    ];

    /// The field's name as used in error messages: `minute`, `hour`, `day-of-month`, `month`,
    /// `day-of-week`.
    pub fn name(self) -> &'static str {
        match self {
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
        }
    }

    /// The smallest value that may be written in the field.
    pub fn min(self) -> u32 {
        match self {
            CronField::Minute | CronField::Hour | CronField::DayOfWeek => 0,
            CronField::DayOfMonth | CronField::Month => 1,
        }
    }

    /// The largest value that may be written in the field (7 for the day of the week, which is
    /// Sunday like 0).
    pub fn max(self) -> u32 {
        match self {
            CronField::Minute => 59,
            CronField::Hour => 23,
            CronField::DayOfMonth => 31,
            CronField::Month => 12,
            CronField::DayOfWeek => 7,
        }
    }

    /// The field's name in words, as [`CronError::message`] uses it: `minute`, `hour`,
    /// `day of month`, `month`, `day of week`.
    pub fn words(self) -> &'static str {
        match self {
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::DayOfMonth => "day of month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day of week",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            CronField::Minute => 0,
            CronField::Hour => 1,
            CronField::DayOfMonth => 2,
            CronField::Month => 3,
            CronField::DayOfWeek => 4,
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What was wrong with an expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CronErrorKind {
    /// The expression is empty or only whitespace.
    #[error("empty expression")]
    Empty,
    /// The expression does not have exactly five whitespace-separated fields.
    #[error(
        "expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily, found {found}"
    )]
    FieldCount {
        /// How many fields were found.
        found: usize,
    },
    /// A word starting with `@` that is not one of the supported macros.
    #[error("unknown macro `{token}` (expected @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually)")]
    UnknownMacro {
        /// The macro as written.
        token: String,
    },
    /// A comma-separated list has an empty item (as in `1,,2` or a trailing comma).
    #[error("empty list item")]
    EmptyItem,
    /// A value is neither a number nor, in the month and day-of-week fields, a known name.
    #[error("`{token}` is not a number")]
    InvalidValue {
        /// The value as written.
        token: String,
    },
    /// A word in the month or day-of-week field that is not a known three-letter name.
    #[error("unknown name `{token}` (expected {expected})")]
    UnknownName {
        /// The name as written.
        token: String,
        /// The accepted names, e.g. `JAN-DEC`.
        expected: &'static str,
    },
    /// A value outside the field's range.
    #[error("{token} is out of range {min}-{max}")]
    OutOfRange {
        /// The value as written.
        token: String,
        /// The field's smallest value.
        min: u32,
        /// The field's largest value.
        max: u32,
    },
    /// A range whose start is greater than its end, as in `5-3`.
    #[error("range `{token}` is reversed (its start is after its end)")]
    ReversedRange {
        /// The range as written.
        token: String,
    },
    /// A step of zero, as in `*/0`.
    #[error("step `{token}` must be at least 1")]
    ZeroStep {
        /// The whole item as written.
        token: String,
    },
    /// A step that is not a plain number, as in `*/x` or `1/2/3`.
    #[error("invalid step in `{token}`")]
    InvalidStep {
        /// The whole item as written.
        token: String,
    },
}

/// An error from [`CronExpr::parse`](crate::CronExpr::parse).
///
/// Its `Display` names the field, the offending text and its column (the 0-based byte offset in
/// the text that was parsed), e.g. ``minute field: 61 is out of range 0-59 (at column 0)``.
/// [`CronError::message`] is a shorter sentence for diagnostics that point at
/// [`CronError::span`] themselves: ``minute 61 is out of range 0-59``.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CronError {
    kind: CronErrorKind,
    field: Option<CronField>,
    span: Range<usize>,
    /// Whether `span` points at offending text (rather than covering the whole expression).
    pointed: bool,
}

impl CronError {
    /// An error about the text at `span`.
    pub(crate) fn at(kind: CronErrorKind, field: Option<CronField>, span: Range<usize>) -> Self {
        CronError {
            kind,
            field,
            span,
            pointed: true,
        }
    }

    /// An error about the whole expression, `text_len` bytes long.
    pub(crate) fn whole(kind: CronErrorKind, text_len: usize) -> Self {
        CronError {
            kind,
            field: None,
            span: 0..text_len,
            pointed: false,
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> &CronErrorKind {
        &self.kind
    }

    /// The field the error is in, when it is about one field.
    pub fn field(&self) -> Option<CronField> {
        self.field
    }

    /// The 0-based byte offset of the offending text in the parsed string, where known.
    pub fn column(&self) -> Option<usize> {
        self.pointed.then_some(self.span.start)
    }

    /// The byte range of the offending text in the parsed string: the value, range, step or
    /// macro at fault, the surplus fields, an empty range where a list item is missing, or the
    /// whole string when it is empty or has too few fields.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The problem as one sentence naming the field in words, without the column, for callers
    /// that point at [`CronError::span`] themselves: `hour 24 is out of range 0-23`,
    /// `minute step must be at least 1`, `expected 5 fields, found 6`,
    /// ``month `FOO` is not a number (or a month name JAN-DEC)``.
    pub fn message(&self) -> String {
        let field = self.field.map_or("value", CronField::words);
        let or_name = match self.field {
            Some(CronField::Month) => " (or a month name JAN-DEC)",
            Some(CronField::DayOfWeek) => " (or a day name SUN-SAT)",
            _ => "",
        };
        match &self.kind {
            CronErrorKind::Empty => "expected 5 fields, found 0".to_string(),
            CronErrorKind::FieldCount { found } => format!("expected 5 fields, found {found}"),
            CronErrorKind::UnknownMacro { token } => format!("unknown cron macro `{token}`"),
            CronErrorKind::EmptyItem => format!("{field} list has an empty element"),
            CronErrorKind::InvalidValue { token } if token.is_empty() => {
                format!("{field} is missing a number{or_name}")
            }
            CronErrorKind::InvalidValue { token } | CronErrorKind::UnknownName { token, .. } => {
                format!("{field} `{token}` is not a number{or_name}")
            }
            CronErrorKind::OutOfRange { token, min, max } => {
                // 7 is accepted for Sunday, but the documented range of the weekday is 0-6.
                let max = if self.field == Some(CronField::DayOfWeek) {
                    6
                } else {
                    *max
                };
                format!("{field} {token} is out of range {min}-{max}")
            }
            CronErrorKind::ReversedRange { token } => {
                format!("{field} range {token} is reversed (start after end)")
            }
            CronErrorKind::ZeroStep { .. } => format!("{field} step must be at least 1"),
            CronErrorKind::InvalidStep { token } => {
                let step = token.split_once('/').map_or("", |(_, step)| step);
                format!("{field} step `{step}` is not a number")
            }
        }
    }
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(field) = self.field {
            write!(f, "{field} field: ")?;
        }
        write!(f, "{}", self.kind)?;
        if let Some(column) = self.column() {
            write!(f, " (at column {column})")?;
        }
        Ok(())
    }
}
