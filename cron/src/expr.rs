//! Parsing, printing and wall-clock matching of five-field cron expressions.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike};

use crate::error::{CronError, CronErrorKind, CronField};

pub(crate) const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
pub(crate) const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The macros and the expressions they stand for.
pub const MACROS: &[(&str, &str)] = &[
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

/// The left-hand side of a list item, before any `/step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base {
    /// `*`
    All,
    /// `n`; with a step, `n/s` means `n-max/s`.
    Single(u32),
    /// `a-b`
    Range(u32, u32),
}

/// One comma-separated item of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Item {
    pub(crate) base: Base,
    /// `None` when no `/step` was written; otherwise at least 1.
    pub(crate) step: Option<u32>,
}

impl Item {
    /// The values `[lo, hi]` the item spans before stepping. For the day of the week, `*` and
    /// `n/s` span 0–6 so that Sunday is produced once.
    fn span(&self, field: CronField) -> (u32, u32) {
        let top = if field == CronField::DayOfWeek {
            6
        } else {
            field.max()
        };
        match self.base {
            Base::All => (field.min(), top),
            Base::Single(v) if self.step.is_some() => (v, top.max(v)),
            Base::Single(v) => (v, v),
            Base::Range(a, b) => (a, b),
        }
    }

    pub(crate) fn bits(&self, field: CronField) -> u64 {
        let (lo, hi) = self.span(field);
        let step = self.step.unwrap_or(1).max(1);
        let mut bits = 0u64;
        let mut v = lo;
        while v <= hi {
            let bit = if field == CronField::DayOfWeek && v == 7 {
                0
            } else {
                v
            };
            bits |= 1 << bit;
            match v.checked_add(step) {
                Some(next) => v = next,
                None => break,
            }
        }
        bits
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.base {
            Base::All => f.write_str("*")?,
            Base::Single(v) => write!(f, "{v}")?,
            Base::Range(a, b) => write!(f, "{a}-{b}")?,
        }
        if let Some(step) = self.step {
            write!(f, "/{step}")?;
        }
        Ok(())
    }
}

/// A parsed field: its items (for printing and describing) and the set of values it matches.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub(crate) items: Vec<Item>,
    /// Bit `v` is set when value `v` matches (day of week: Sunday is bit 0 only).
    pub(crate) bits: u64,
}

impl Field {
    pub(crate) fn has(&self, v: u32) -> bool {
        v < 64 && self.bits & (1 << v) != 0
    }

    /// The smallest matching value `>= from`, if any.
    pub(crate) fn next_from(&self, from: u32) -> Option<u32> {
        if from >= 64 {
            return None;
        }
        let masked = self.bits & (!0u64 << from);
        (masked != 0).then(|| masked.trailing_zeros())
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = u32> + '_ {
        (0..64).filter(|v| self.has(*v))
    }

    pub(crate) fn count(&self) -> u32 {
        self.bits.count_ones()
    }

    /// The field text starts with `*` (Vixie cron's test for an unrestricted day field).
    pub(crate) fn starts_with_star(&self) -> bool {
        self.items.first().is_some_and(|i| i.base == Base::All)
    }

    /// The field is written as `*`, with no step.
    pub(crate) fn is_plain_star(&self) -> bool {
        self.items.len() == 1 && self.items[0].base == Base::All && self.items[0].step.is_none()
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

/// A parsed five-field cron expression: `minute hour day-of-month month day-of-week`.
///
/// Each field is a comma-separated list of `*`, `n`, `a-b`, `*/s`, `a-b/s` or `a/s` (which means
/// `a-max/s`). Months may be written `JAN`–`DEC` and days of the week `SUN`–`SAT`, in any case and
/// also inside ranges; Sunday is 0 or 7. The macros `@hourly`, `@daily`, `@midnight`, `@weekly`,
/// `@monthly`, `@yearly` and `@annually` stand for their usual expansions ([`MACROS`]).
///
/// When both the day-of-month and the day-of-week fields are restricted (neither starts with
/// `*`), a day matching **either** fires (Vixie cron); otherwise a day must match both.
///
/// Two expressions compare equal when they fire at the same times under the same rules, so
/// `@daily == "0 0 * * *"` and `"0 0 * * 7" == "0 0 * * SUN"`.
///
/// ```
/// use codeai_cron::CronExpr;
/// let expr: CronExpr = "0 9-17 * * mon-fri".parse()?;
/// assert_eq!(expr.to_string(), "0 9-17 * * 1-5");
/// assert_eq!(expr.describe(), "at minute 0 past hours 9-17 on Monday through Friday");
/// # Ok::<(), codeai_cron::CronError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CronExpr {
    pub(crate) fields: [Field; 5],
    /// Some month/day-of-month combination exists (e.g. not `30 2`): otherwise nothing ever fires.
    pub(crate) satisfiable: bool,
}

impl CronExpr {
    /// Parses an expression; see the type's documentation for the syntax.
    ///
    /// # Errors
    /// A [`CronError`] naming the field, the offending text and its byte offset in `text`.
    pub fn parse(text: &str) -> Result<CronExpr, CronError> {
        let tokens = tokenize(text);
        let Some(&(first_col, first)) = tokens.first() else {
            return Err(CronError::whole(CronErrorKind::Empty, text.len()));
        };
        // The surplus tokens, from the first one past `expected` to the end of the last.
        let surplus = |expected: usize| {
            let (last_col, last) = tokens[tokens.len() - 1];
            tokens[expected].0..last_col + last.len()
        };
        if first.starts_with('@') {
            if tokens.len() != 1 {
                return Err(CronError::at(
                    CronErrorKind::FieldCount {
                        found: tokens.len(),
                    },
                    None,
                    surplus(1),
                ));
            }
            let Some(&(_, expansion)) = MACROS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(first))
            else {
                return Err(CronError::at(
                    CronErrorKind::UnknownMacro {
                        token: first.to_string(),
                    },
                    None,
                    first_col..first_col + first.len(),
                ));
            };
            return CronExpr::parse(expansion);
        }
        if tokens.len() > 5 {
            return Err(CronError::at(
                CronErrorKind::FieldCount {
                    found: tokens.len(),
                },
                None,
                surplus(5),
            ));
        }
        if tokens.len() < 5 {
            return Err(CronError::whole(
                CronErrorKind::FieldCount {
                    found: tokens.len(),
                },
                text.len(),
            ));
        }
        let field = |i: usize| parse_field(CronField::ALL[i], tokens[i].1, tokens[i].0);
        let fields = [field(0)?, field(1)?, field(2)?, field(3)?, field(4)?];
        let mut expr = CronExpr {
            fields,
            satisfiable: true,
        };
        expr.satisfiable = expr.compute_satisfiable();
        Ok(expr)
    }

    /// Whether the expression can fire at all: `false` when no month it allows has a day of the
    /// month it lists (`0 0 30 2 *`, `0 0 31 4 *`) and the day of the week cannot make up for it.
    /// [`CronExpr::next_after`] returns `None` at once for such expressions.
    pub fn can_fire(&self) -> bool {
        self.satisfiable
    }

    pub(crate) fn field(&self, field: CronField) -> &Field {
        &self.fields[field.index()]
    }

    /// Whether the hour field is written as `*` or with a `/` step (`*`, `*/2`, `1-5/2`, `3/4`):
    /// [`CronExpr::describe`] then words it as a pattern rather than listing times. It plays no
    /// part in the DST rules, which use [`CronExpr::is_fixed_time`].
    pub fn hour_is_wildcard(&self) -> bool {
        self.field(CronField::Hour)
            .items
            .iter()
            .any(|i| i.step.is_some() || i.base == Base::All)
    }

    /// Whether the job runs at *fixed times* for the DST rules of the crate docs: neither its
    /// minute nor its hour field starts with `*`, and its hour field does not list all 24 hours
    /// (`30 2 * * *`, `0,30 1-3 * * *`, `0 1/2 * * *`; not `*/15 2 * * *`, `0 * * * *`,
    /// `0 */2 * * *` or `0 0-23 * * *`). In a spring-forward gap only fixed-time jobs fire (once,
    /// at the jump); in a fall-back overlap a fixed-time job fires in the first pass only, every
    /// other job in both passes.
    pub fn is_fixed_time(&self) -> bool {
        let (minute, hour) = (self.field(CronField::Minute), self.field(CronField::Hour));
        !minute.starts_with_star() && !hour.starts_with_star() && hour.count() < 24
    }

    /// Whether the day-of-month field is restricted (does not start with `*`).
    pub fn day_of_month_restricted(&self) -> bool {
        !self.field(CronField::DayOfMonth).starts_with_star()
    }

    /// Whether the day-of-week field is restricted (does not start with `*`).
    pub fn day_of_week_restricted(&self) -> bool {
        !self.field(CronField::DayOfWeek).starts_with_star()
    }

    /// Whether the date matches the month, day-of-month and day-of-week fields (with the Vixie
    /// either-day rule).
    pub fn matches_date(&self, date: NaiveDate) -> bool {
        if !self.field(CronField::Month).has(date.month()) {
            return false;
        }
        let dom = self.field(CronField::DayOfMonth).has(date.day());
        let dow = self
            .field(CronField::DayOfWeek)
            .has(date.weekday().num_days_from_sunday());
        if self.day_of_month_restricted() && self.day_of_week_restricted() {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// Whether a wall-clock time matches all five fields (seconds are ignored).
    pub fn matches_local(&self, local: NaiveDateTime) -> bool {
        self.field(CronField::Minute).has(local.minute())
            && self.field(CronField::Hour).has(local.hour())
            && self.matches_date(local.date())
    }

    fn compute_satisfiable(&self) -> bool {
        if self.day_of_month_restricted() && self.day_of_week_restricted() {
            // Every month has every day of the week.
            return true;
        }
        // Every valid date falls on every day of the week in some year, so only the month and
        // day-of-month combination can make an expression impossible (e.g. `0 0 30 2 *`).
        const LONGEST: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let dom = self.field(CronField::DayOfMonth);
        self.field(CronField::Month).values().any(|m| {
            dom.values()
                .any(|d| (1..=LONGEST[(m - 1) as usize]).contains(&d))
        })
    }

    /// The first wall-clock minute `>= from` (rounded up to a whole minute) and `< until` that
    /// matches the expression. Skips whole months, days and hours using the field sets.
    pub(crate) fn next_local_match(
        &self,
        from: NaiveDateTime,
        until: NaiveDateTime,
    ) -> Option<NaiveDateTime> {
        if !self.satisfiable {
            return None;
        }
        let from = ceil_minute(from)?;
        let minutes = self.field(CronField::Minute);
        let hours = self.field(CronField::Hour);
        let months = self.field(CronField::Month);
        let mut date = from.date();
        let mut hour = from.hour();
        let mut minute = from.minute();
        loop {
            if date > until.date() {
                return None;
            }
            if !months.has(date.month()) {
                date = next_month_start(months, date)?;
                (hour, minute) = (0, 0);
                continue;
            }
            if !self.matches_date(date) {
                date = date.succ_opt()?;
                (hour, minute) = (0, 0);
                continue;
            }
            match hours.next_from(hour) {
                Some(h) if h < 24 => {
                    if h != hour {
                        (hour, minute) = (h, 0);
                    }
                }
                _ => {
                    date = date.succ_opt()?;
                    (hour, minute) = (0, 0);
                    continue;
                }
            }
            match minutes.next_from(minute) {
                Some(m) if m < 60 => {
                    let found = date.and_time(NaiveTime::from_hms_opt(hour, m, 0)?);
                    return (found < until).then_some(found);
                }
                _ => {
                    minute = 0;
                    hour += 1;
                    if hour == 24 {
                        date = date.succ_opt()?;
                        hour = 0;
                    }
                }
            }
        }
    }
}

/// The first day of the next month (after `date`'s) that the month field allows.
fn next_month_start(months: &Field, date: NaiveDate) -> Option<NaiveDate> {
    let (mut year, mut month) = (date.year(), date.month());
    for _ in 0..12 {
        month += 1;
        if month > 12 {
            month = 1;
            year = year.checked_add(1)?;
        }
        if months.has(month) {
            return NaiveDate::from_ymd_opt(year, month, 1);
        }
    }
    None
}

/// Rounds up to a whole minute (a time already on a whole minute is unchanged).
pub(crate) fn ceil_minute(t: NaiveDateTime) -> Option<NaiveDateTime> {
    let floor = t.with_second(0)?.with_nanosecond(0)?;
    if floor == t {
        Some(t)
    } else {
        floor.checked_add_signed(TimeDelta::minutes(1))
    }
}

/// Splits on whitespace, keeping each token's byte offset.
fn tokenize(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push((s, &text[s..i]));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out
}

fn parse_field(field: CronField, text: &str, col: usize) -> Result<Field, CronError> {
    let mut items = Vec::new();
    let mut bits = 0u64;
    let mut offset = 0;
    for part in text.split(',') {
        let item = parse_item(field, part, col + offset)?;
        bits |= item.bits(field);
        items.push(item);
        offset += part.len() + 1;
    }
    Ok(Field { items, bits })
}

fn parse_item(field: CronField, text: &str, col: usize) -> Result<Item, CronError> {
    let err = |kind, span: std::ops::Range<usize>| {
        Err(CronError::at(
            kind,
            Some(field),
            col + span.start..col + span.end,
        ))
    };
    if text.is_empty() {
        return err(CronErrorKind::EmptyItem, 0..0);
    }
    let (base_text, step) = match text.split_once('/') {
        None => (text, None),
        Some((base, step)) => {
            let step_span = base.len() + 1..text.len();
            let parsed = if step.bytes().all(|b| b.is_ascii_digit()) {
                step.parse::<u32>().ok()
            } else {
                None
            };
            match parsed {
                Some(0) => {
                    return err(
                        CronErrorKind::ZeroStep {
                            token: text.to_string(),
                        },
                        step_span,
                    )
                }
                Some(n) => (base, Some(n)),
                None => {
                    return err(
                        CronErrorKind::InvalidStep {
                            token: text.to_string(),
                        },
                        step_span,
                    )
                }
            }
        }
    };
    let base = if base_text == "*" {
        Base::All
    } else if let Some((a, b)) = base_text.split_once('-') {
        let lo = parse_value(field, a, col)?;
        let hi = parse_value(field, b, col + a.len() + 1)?;
        if lo > hi {
            return err(
                CronErrorKind::ReversedRange {
                    token: base_text.to_string(),
                },
                0..base_text.len(),
            );
        }
        Base::Range(lo, hi)
    } else {
        Base::Single(parse_value(field, base_text, col)?)
    };
    Ok(Item { base, step })
}

fn parse_value(field: CronField, text: &str, col: usize) -> Result<u32, CronError> {
    let err = |kind| Err(CronError::at(kind, Some(field), col..col + text.len()));
    if text.is_empty() {
        return err(CronErrorKind::InvalidValue {
            token: text.to_string(),
        });
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let out_of_range = CronErrorKind::OutOfRange {
            token: text.to_string(),
            min: field.min(),
            max: field.max(),
        };
        return match text.parse::<u32>() {
            Ok(v) if (field.min()..=field.max()).contains(&v) => Ok(v),
            _ => err(out_of_range),
        };
    }
    let (names, first, expected): (&[&str], u32, &'static str) = match field {
        CronField::Month => (&MONTH_NAMES, 1, "JAN-DEC"),
        CronField::DayOfWeek => (&DAY_NAMES, 0, "SUN-SAT"),
        _ => {
            return err(CronErrorKind::InvalidValue {
                token: text.to_string(),
            })
        }
    };
    let upper = text.to_ascii_uppercase();
    match names.iter().position(|n| *n == upper) {
        Some(i) => Ok(first + i as u32),
        None => err(CronErrorKind::UnknownName {
            token: text.to_string(),
            expected,
        }),
    }
}

impl FromStr for CronExpr {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronExpr::parse(s)
    }
}

/// Prints the normalized expression: five fields separated by single spaces, macros expanded,
/// names replaced by numbers and leading zeros dropped. Parsing the output gives an equal
/// expression.
impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{field}")?;
        }
        Ok(())
    }
}

impl CronExpr {
    /// What decides when the expression fires: the five value sets and the flags that change
    /// the rules (day restriction and fixed time).
    fn semantic_key(&self) -> ([u64; 5], bool, bool, bool) {
        (
            self.fields.each_ref().map(|f| f.bits),
            self.day_of_month_restricted(),
            self.day_of_week_restricted(),
            self.is_fixed_time(),
        )
    }
}

impl PartialEq for CronExpr {
    fn eq(&self, other: &Self) -> bool {
        self.semantic_key() == other.semantic_key()
    }
}

impl Eq for CronExpr {}

impl Hash for CronExpr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.semantic_key().hash(state);
    }
}
