//! `format(x, pattern)`: a number as text, in the spreadsheet patterns people know. The
//! pattern's digits part is `0` and `#` with an optional `,` (thousands) and `.` (decimals:
//! as many as the `0`s and `#`s after it); text around it is kept, and a `%` after it shows
//! the number times 100. `format(1249.5, "#,##0.00")` is `1,249.50`; `format(0.125, "0.0%")`
//! is `12.5%`; `format(3, "0 kg")` is `3 kg`.

/// The number in the pattern, or why the pattern is not one.
pub fn format(x: f64, pattern: &str) -> Result<String, String> {
    let digit = |c: char| c == '0' || c == '#';
    let (Some(first), Some(last)) = (pattern.find(digit), pattern.rfind(digit)) else {
        return Err(format!(
            "format() pattern `{pattern}` has no digits: write it like \"0.00\" or \"#,##0\""
        ));
    };
    let (prefix, core, suffix) = (
        &pattern[..first],
        &pattern[first..=last],
        &pattern[last + 1..],
    );
    if let Some(bad) = core.chars().find(|c| !matches!(c, '0' | '#' | ',' | '.')) {
        return Err(format!(
            "format() pattern `{pattern}`: `{bad}` between its digits (use 0, #, `,` and `.`)"
        ));
    }
    let (whole, decimals) = match core.split_once('.') {
        Some((w, d)) if !d.contains('.') && !d.contains(',') => (w, d.len()),
        Some(_) => {
            return Err(format!(
                "format() pattern `{pattern}`: one `.` and no `,` after it"
            ))
        }
        None => (core, 0),
    };
    if !x.is_finite() {
        return Err(format!("format() needs a finite number, got {x}"));
    }
    let x = if suffix.contains('%') { x * 100.0 } else { x };
    let text = format!("{:.*}", decimals, x.abs());
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text.as_str(), None),
    };
    // The sign goes before the pattern's text: `-$411.00`, not `$-411.00`.
    let negative = x < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0');
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(prefix);
    if whole.contains(',') {
        for (i, c) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
    } else {
        out.push_str(int);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out.push_str(suffix);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn numbers_follow_the_pattern() {
        for (x, pattern, expected) in [
            (1249.5, "#,##0.00", "1,249.50"),
            (1249.5, "0.00", "1249.50"),
            (1_234_567.891, "#,##0", "1,234,568"),
            (0.125, "0.0%", "12.5%"),
            (3.0, "0 kg", "3 kg"),
            (-1249.5, "€ #,##0.00", "-€ 1,249.50"),
            (-411.0, "$#,##0.00", "-$411.00"),
            (-0.001, "0.00", "0.00"),
            (999.999, "#,##0.00", "1,000.00"),
            (7.0, "#", "7"),
        ] {
            assert_eq!(format(x, pattern).unwrap(), expected, "{x} {pattern}");
        }
    }

    #[test]
    fn a_pattern_without_digits_or_with_stray_characters_is_refused() {
        assert!(format(1.0, "money").unwrap_err().contains("has no digits"));
        assert!(format(1.0, "0x0")
            .unwrap_err()
            .contains("`x` between its digits"));
        assert!(format(1.0, "0.0.0").unwrap_err().contains("one `.`"));
        assert!(format(f64::NAN, "0").unwrap_err().contains("finite"));
    }
}
