//! Reading the host's settings from its environment.

/// The positive whole number in variable `name`: `None` when it is unset or empty, an error that
/// names the variable and its value when it is not a positive number.
pub fn positive(name: &str) -> Result<Option<u64>, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| format!("{name}=`{v}` is not a positive number")),
        _ => Ok(None),
    }
}
