//! Input rules shared by every route: lengths in Unicode scalar values, emails, tags, passwords.

use crate::error::{Error, Result};

/// Length of `s` in Unicode scalar values, as conventions.md counts.
pub fn len(s: &str) -> usize {
    s.chars().count()
}

/// An optional integer parameter within `min..=max`, `default` when absent.
pub fn in_range(v: Option<i64>, default: i64, min: i64, max: i64, name: &str) -> Result<i64> {
    let v = v.unwrap_or(default);
    if !(min..=max).contains(&v) {
        return Err(Error::invalid(format!("`{name}` must be {min} to {max}")));
    }
    Ok(v)
}

pub fn text(field: &str, s: &str, min: usize, max: usize) -> Result<()> {
    let n = len(s);
    if n < min || n > max {
        return Err(Error::invalid(if min == 0 {
            format!("`{field}` must be at most {max} characters")
        } else {
            format!("`{field}` must be {min} to {max} characters")
        }));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
        return Err(Error::invalid(format!("`{field}` must not contain control characters")));
    }
    Ok(())
}

/// One `@`, a dotted domain, at most 254 characters, no spaces.
pub fn email(s: &str) -> Result<()> {
    let bad = || Error::invalid("`email` is not a valid email address");
    if len(s) > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let mut parts = s.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if local.is_empty() || domain.starts_with('.') || domain.ends_with('.') || !domain.contains('.') {
        return Err(bad());
    }
    if domain.split('.').any(|label| label.is_empty()) {
        return Err(bad());
    }
    Ok(())
}

/// Emails compare case-insensitively; stored as given, looked up by this form.
pub fn email_key(s: &str) -> String {
    s.to_lowercase()
}

pub fn password(s: &str) -> Result<()> {
    let n = len(s);
    if !(8..=128).contains(&n) {
        return Err(Error::invalid("`password` must be 8 to 128 characters"));
    }
    Ok(())
}

/// At most 20 tags, each 1..=40 of `[a-z0-9._-]`.
pub fn tags(tags: &[String]) -> Result<()> {
    if tags.len() > 20 {
        return Err(Error::invalid("at most 20 `tags`"));
    }
    for t in tags {
        let ok = (1..=40).contains(&t.len())
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !ok {
            return Err(Error::invalid(format!(
                "tag `{}` must be 1 to 40 characters of a-z, 0-9, `.`, `_`, `-`",
                t.chars().take(50).collect::<String>()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.co", "First.Last+tag@sub.example.org", "ü@exämple.de"] {
            assert!(email(ok).is_ok(), "{ok}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "a",
            "a@b",
            "@b.co",
            "a@@b.co",
            "a@b@c.co",
            "a b@c.co",
            "a@.b.co",
            "a@b.co.",
            "a@b..co",
            long.as_str(),
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
        assert_eq!(email_key("Ann@Example.COM"), "ann@example.com");
    }

    #[test]
    fn lengths_count_scalars() {
        assert!(text("name", &"é".repeat(100), 1, 100).is_ok());
        assert!(text("name", &"é".repeat(101), 1, 100).is_err());
        assert!(text("name", "", 1, 100).is_err());
        assert!(text("name", "a\u{0}b", 1, 100).is_err());
        assert!(password("1234567").is_err());
        assert!(password(&"x".repeat(128)).is_ok());
        assert!(password(&"x".repeat(129)).is_err());
    }

    #[test]
    fn tag_rules() {
        assert!(tags(&["prod".into(), "v1.2_beta-3".into()]).is_ok());
        assert!(tags(&["Prod".into()]).is_err());
        assert!(tags(&["".into()]).is_err());
        assert!(tags(&["a".repeat(41)]).is_err());
        assert!(tags(&vec!["a".to_string(); 21]).is_err());
    }
}
