//! Masking of buyers' identities for everything a person reads: alerts, logs, reports.
//! The raw values stay only in the database. And [`Secret`]: tokens and webhook URLs that
//! no `Debug` or `Display` may show.

/// Masks a buyer id: first and last character kept, the middle replaced by `***`.
///
/// The number of stars is fixed so the mask does not leak the id's length.
pub fn mask_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    match chars.len() {
        0 => String::new(),
        1 | 2 => "*".repeat(chars.len()),
        n => format!("{}***{}", chars[0], chars[n - 1]),
    }
}

/// Masks a mainland mobile number as `138****5678`; other strings fall back to [`mask_id`].
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().collect();
    if digits.len() == 11 && digits.iter().all(char::is_ascii_digit) {
        let head: String = digits[..3].iter().collect();
        let tail: String = digits[7..].iter().collect();
        return format!("{head}****{tail}");
    }
    mask_id(phone)
}

/// A token, a signing secret or a webhook URL carrying one: its `Debug` and `Display`
/// print `***`, so a config printed with `{:?}` (or logged by a future line) shows none.
/// [`Secret::expose`] is the one way to the value, for the request that needs it.
#[derive(Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself: only to put it where it is needed (a header, a request URL).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("SEC-abc");
        assert_eq!(format!("{s} {s:?} {:?}", Some(&s)), "*** *** Some(***)");
        assert_eq!(s.expose(), "SEC-abc");
    }

    #[test]
    fn masks() {
        let cases =
            [("tb_buyer_8842", "t***2"), ("小明", "**"), ("a", "*"), ("", ""), ("买家张三丰", "买***丰")];
        for (id, want) in cases {
            assert_eq!(mask_id(id), want, "{id}");
        }
        assert_eq!(mask_phone("13812345678"), "138****5678");
    }
}
