//! English descriptions of cron expressions.

use crate::error::CronField;
use crate::expr::{Base, CronExpr, Field, Item};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// At most this many `HH:MM` times are listed before falling back to "at minute … past hours …".
const MAX_LISTED_TIMES: u32 = 6;

impl CronExpr {
    /// A short English description, e.g. "at 06:00 every day", "at 08:00 on Monday",
    /// "every 5 minutes", "at minute 0 past every hour" or "at 07:00 on day 1 of the month".
    ///
    /// Times are wall-clock times of the job's time zone.
    ///
    /// ```
    /// use codeai_cron::CronExpr;
    /// let describe = |s: &str| CronExpr::parse(s).map(|e| e.describe());
    /// assert_eq!(describe("0 6 * * *")?, "at 06:00 every day");
    /// assert_eq!(describe("*/5 * * * *")?, "every 5 minutes");
    /// assert_eq!(describe("0 12 * JAN,JUL SUN")?, "at 12:00 on Sunday in January and July");
    /// # Ok::<(), codeai_cron::CronError>(())
    /// ```
    pub fn describe(&self) -> String {
        let (mut out, fixed_times) = self.describe_time();
        match self.describe_days() {
            Some(days) => {
                out.push(' ');
                out.push_str(&days);
            }
            None if fixed_times => out.push_str(" every day"),
            None => {}
        }
        let months = self.field(CronField::Month);
        if months.count() < 12 {
            out.push_str(" in ");
            out.push_str(&list(months, CronField::Month));
        }
        out
    }

    /// The time-of-day part, and whether it is a list of fixed `HH:MM` times.
    fn describe_time(&self) -> (String, bool) {
        let minutes = self.field(CronField::Minute);
        let hours = self.field(CronField::Hour);
        let single_minute = match minutes.items.as_slice() {
            [Item {
                base: Base::Single(m),
                step: None,
            }] => Some(*m),
            _ => None,
        };
        if let Some(m) = single_minute {
            if !self.hour_is_wildcard() && hours.count() <= MAX_LISTED_TIMES {
                let times: Vec<String> = hours.values().map(|h| format!("{h:02}:{m:02}")).collect();
                return (format!("at {}", join(&times, "and")), true);
            }
        }
        let every_minutes = match minutes.items.as_slice() {
            [Item {
                base: Base::All,
                step: None,
            }] => Some(1),
            [Item {
                base: Base::All,
                step: Some(n),
            }] => Some(*n),
            _ => None,
        };
        let minute_part = match (every_minutes, single_minute) {
            (Some(1), _) => "every minute".to_string(),
            (Some(n), _) => format!("every {n} minutes"),
            (None, Some(m)) => format!("at minute {m}"),
            (None, None) => format!("at minutes {}", list(minutes, CronField::Minute)),
        };
        let hour_part = if hours.is_plain_star() {
            if every_minutes.is_some() {
                String::new()
            } else {
                " past every hour".to_string()
            }
        } else if let [Item {
            base: Base::All,
            step: Some(n),
        }] = hours.items.as_slice()
        {
            format!(" past every {n} hours")
        } else if let (1, Some(h)) = (hours.count(), hours.values().next()) {
            format!(" between {h:02}:00 and {h:02}:59")
        } else {
            format!(" past hours {}", list(hours, CronField::Hour))
        };
        (minute_part + &hour_part, false)
    }

    /// The day part ("on Monday", "on day 1 of the month", …), or `None` for every day.
    fn describe_days(&self) -> Option<String> {
        let dom = self.field(CronField::DayOfMonth);
        let dow = self.field(CronField::DayOfWeek);
        let dom_text = (dom.count() < 31).then(|| {
            let noun = if dom.count() == 1 { "day" } else { "days" };
            format!("{noun} {} of the month", list(dom, CronField::DayOfMonth))
        });
        let dow_text = (dow.count() < 7).then(|| list(dow, CronField::DayOfWeek));
        match (dom_text, dow_text) {
            (None, None) => None,
            (Some(d), None) => Some(format!("on {d}")),
            (None, Some(w)) => Some(format!("on {w}")),
            (Some(d), Some(w)) => {
                if self.day_of_month_restricted() && self.day_of_week_restricted() {
                    Some(format!("on {d} or on {w}"))
                } else {
                    let w = join(&list_parts(dow, CronField::DayOfWeek), "or");
                    Some(format!("on {d} if it is a {w}"))
                }
            }
        }
    }
}

fn value_name(field: CronField, v: u32) -> String {
    match field {
        CronField::Month => MONTHS
            .get(v.wrapping_sub(1) as usize)
            .map_or_else(|| v.to_string(), |s| (*s).to_string()),
        CronField::DayOfWeek => DAYS[(v % 7) as usize].to_string(),
        _ => v.to_string(),
    }
}

/// Describes a field's values: named ranges as "Monday through Friday", numeric ranges as
/// "9-17", stepped items by their values; joined with commas and a final "and".
fn list(field: &Field, kind: CronField) -> String {
    join(&list_parts(field, kind), "and")
}

fn list_parts(field: &Field, kind: CronField) -> Vec<String> {
    let named = matches!(kind, CronField::Month | CronField::DayOfWeek);
    let mut parts = Vec::new();
    for item in &field.items {
        match (item.base, item.step) {
            (Base::Single(v), None) => parts.push(value_name(kind, v)),
            (Base::Range(a, b), None) if named => parts.push(format!(
                "{} through {}",
                value_name(kind, a),
                value_name(kind, b)
            )),
            (Base::Range(a, b), None) => parts.push(format!("{a}-{b}")),
            _ => {
                let bits = item.bits(kind);
                parts.extend(
                    (0..64u32)
                        .filter(|v| bits & (1 << v) != 0)
                        .map(|v| value_name(kind, v)),
                );
            }
        }
    }
    parts
}

fn join(parts: &[String], conjunction: &str) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}
