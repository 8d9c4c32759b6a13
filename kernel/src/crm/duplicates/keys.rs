//! The exact keys duplicate detection looks records up by.
//!
//! A record's keys are stored with its search document (`match_keys`) and
//! a new record's are computed from its input, by the same functions, so
//! the check on every create is one indexed look-up. Keys only gather
//! candidates; the evidence and its weight are decided afterwards from
//! the records the caller may see.

use std::collections::BTreeSet;

use unicode_normalization::UnicodeNormalization;

/// Letters of each name word a key keeps: a slip after them is still
/// found (`Lovelace`, `Lovelance`), a slip within them is not.
const NAME_PREFIX: usize = 4;

/// A contact's keys: its email addresses, phone numbers and name.
pub fn contact<'a>(
    first_name: &str,
    last_name: &str,
    emails: impl IntoIterator<Item = &'a str>,
    phones: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let mut keys = BTreeSet::new();
    keys.extend(
        emails
            .into_iter()
            .map(email)
            .filter(|e| !e.is_empty())
            .map(|e| format!("email:{e}")),
    );
    keys.extend(
        phones
            .into_iter()
            .filter_map(|p| phone_line(&digits(p)).map(|l| format!("phone:{l}"))),
    );
    // First and last word, so a middle name on one side only still meets.
    let words = name_words(&format!("{first_name} {last_name}"));
    let ends: Vec<&String> = match words.as_slice() {
        [] => Vec::new(),
        [one] => vec![one],
        [first, .., last] => vec![first, last],
    };
    keys.extend(name_key(&ends));
    keys.into_iter().collect()
}

/// An account's keys: its domain and name.
pub fn account(name: &str, domain: Option<&str>) -> Vec<String> {
    let mut keys = BTreeSet::new();
    if let Some(d) = domain.map(email).filter(|d| !d.is_empty()) {
        keys.insert(format!("domain:{d}"));
    }
    // The first two words: `Acme Corp` meets `Acme Corporation Ltd`.
    let words = name_words(name);
    let firsts: Vec<&String> = words.iter().take(2).collect();
    keys.extend(name_key(&firsts));
    keys.into_iter().collect()
}

/// Whether a key is a name key (a weak one: many records share it).
pub fn is_name(key: &str) -> bool {
    key.starts_with("name:")
}

/// An email address (or domain) as compared: trimmed, lower-cased.
pub fn email(s: &str) -> String {
    s.trim().to_lowercase()
}

/// A phone number's digits.
pub fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// The part of a number (in digits) that names its line: the last nine
/// digits, so `+44 20 7946 0000` and `020 7946 0000` meet. Numbers under
/// seven digits name nothing reliably.
pub fn phone_line(digits: &str) -> Option<&str> {
    (digits.len() >= 7).then(|| &digits[digits.len().saturating_sub(9)..])
}

/// Lower-cased words of a name, accents folded (`José` meets `Jose`).
pub fn name_words(name: &str) -> Vec<String> {
    let folded: String = name
        .nfd()
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .collect::<String>()
        .to_lowercase();
    folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The name key of some words: each word's beginning, in sorted order so
/// `Lovelace Ada` meets `Ada Lovelace`.
fn name_key(words: &[&String]) -> Option<String> {
    let mut prefixes: Vec<String> = words
        .iter()
        .map(|w| w.chars().take(NAME_PREFIX).collect())
        .collect();
    prefixes.sort();
    (!prefixes.is_empty()).then(|| format!("name:{}", prefixes.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_has_a_key_per_address_line_and_one_for_the_name() {
        let keys = contact(
            "José",
            "Lovelace",
            [" Ada@Example.COM ", "ada@example.com"],
            ["+44 20 7946 0000", "123"],
        );
        assert_eq!(
            keys,
            vec!["email:ada@example.com", "name:jose love", "phone:079460000"]
        );
    }

    #[test]
    fn names_meet_across_order_middle_names_and_late_slips() {
        let key = |f: &str, l: &str| contact(f, l, [], []);
        assert_eq!(key("Ada", "Lovelace"), key("Ada", "Lovelance"));
        assert_eq!(key("Ada", "Lovelace"), key("Ada King", "Lovelace"));
        assert_eq!(key("Lovelace", "Ada"), key("Ada", "Lovelace"));
        assert_ne!(key("Ada", "Lovelace"), key("Grace", "Hopper"));
        assert!(key("", "").is_empty());
    }

    #[test]
    fn an_account_is_keyed_by_domain_and_its_first_two_words() {
        assert_eq!(
            account("Acme Corporation Ltd", Some("ACME.com")),
            vec!["domain:acme.com", "name:acme corp"]
        );
        assert_eq!(account("Acme Corp", None), vec!["name:acme corp"]);
    }

    #[test]
    fn numbers_name_their_line_by_the_last_nine_digits() {
        assert_eq!(
            phone_line(&digits("+44 20 7946 0000")),
            phone_line(&digits("020 7946 0000"))
        );
        assert_eq!(phone_line("12345"), None);
    }
}
