//! Masking of buyers' identities for everything a person reads: alerts, logs, reports.
//! The raw values stay only in the database.

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

#[cfg(test)]
mod tests {
    use super::*;

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
