//! The rules for display names (which are allowed, which look alike) and for
//! message text, with typed errors whose texts are what users see.

use super::MAX_NAME_LEN;

/// A name every check falls back to.
const FALLBACK_NAME: &str = "guest";

/// Why a display name is refused. The texts are what users see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("name may only hold letters, digits, '_', '-' and '.' (not {0:?})")]
    BadChar(char),
    #[error("the name {0:?} is reserved")]
    Reserved(String),
}

/// Why a message's text is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("message holds a NUL byte (at byte {at})")]
    NulByte { at: usize },
}

/// Checks a display name: 1..=32 characters, letters, digits and `_-.`, and
/// not one that could pass for the server (compared by [`name_key`], so that
/// `ЅERVER` with a Cyrillic `Ѕ` is refused too).
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let n = name.chars().count();
    if n == 0 {
        return Err(NameError::Empty);
    }
    if n > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if let Some(c) = name.chars().find(|&c| !name_char(c)) {
        return Err(NameError::BadChar(c));
    }
    if matches!(
        name_key(name).as_str(),
        "server" | "chatmon" | "system" | "you"
    ) {
        return Err(NameError::Reserved(name.to_string()));
    }
    Ok(())
}

/// Whether `c` may appear in a name: letters, digits and `_-.`, but not the
/// styled copies of Latin letters (mathematical, circled, squared) that
/// exist only to look like other letters.
fn name_char(c: char) -> bool {
    (c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !matches!(c,
            '\u{2460}'..='\u{24FF}' // enclosed alphanumerics: ⓐ ①
            | '\u{1D400}'..='\u{1D7FF}' // mathematical alphanumerics: 𝐚 𝕒
            | '\u{1F100}'..='\u{1F1FF}' // enclosed supplement: 🄰
        )
}

/// The form in which names are compared, for uniqueness and for the reserved
/// names: lowercase, with fullwidth forms and the common look-alikes of Latin
/// letters (Cyrillic and Greek `а е о р с х у`..., `0`/`1`, `I`/`l`)
/// folded to one Latin letter. Two names with one key would look the same in
/// the reply pane or the log, so the server never lets both in at once.
pub fn name_key(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '1' => 'l',
            '0' => 'o',
            // Fullwidth ASCII (！ to ～).
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            c => c,
        })
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'а' | 'α' => 'a',
            'в' | 'β' => 'b',
            'с' | 'ϲ' => 'c',
            'ԁ' => 'd',
            'е' | 'ё' | 'ε' => 'e',
            'һ' | 'н' => 'h',
            // Capital I and small l look the same in many fonts: one key
            // for both (so `bill` and `biil` clash, which costs a suffix).
            'i' | 'і' | 'ї' | 'ι' | 'ı' | 'ӏ' | 'ⅼ' => 'l',
            'ј' | 'ϳ' => 'j',
            'к' | 'κ' => 'k',
            'м' => 'm',
            'п' | 'η' => 'n',
            'о' | 'ο' | 'σ' => 'o',
            'р' | 'ρ' => 'p',
            'ԛ' => 'q',
            'ѕ' => 's',
            'т' | 'τ' => 't',
            'υ' => 'u',
            'ν' => 'v',
            'ԝ' | 'ω' => 'w',
            'х' | 'χ' => 'x',
            'у' | 'γ' => 'y',
            'ζ' => 'z',
            c => c,
        })
        .collect()
}

/// Checks the text of a message: NUL bytes are refused (they truncate text in
/// C tools and terminals); everything else is kept and escaped where shown.
pub fn check_text(text: &str) -> Result<(), TextError> {
    // On bytes, by memchr (`contains`): a byte loop was a fifth of the
    // samples in the server's message handling in a profile. Nearly every
    // text has no NUL; only then is its position looked for.
    if !text.as_bytes().contains(&0) {
        return Ok(());
    }
    let at = text.bytes().position(|b| b == 0).unwrap_or_default();
    Err(TextError::NulByte { at })
}

/// Turns any string into a valid name, for defaults such as the login name.
pub fn sanitize_name(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .filter(|&c| name_char(c))
        .take(MAX_NAME_LEN)
        .collect();
    if validate_name(&s).is_err() {
        s = String::from(FALLBACK_NAME);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alike_names_share_a_key() {
        let alice = name_key("alice");
        for fake in [
            "Alice",
            "ALICE",
            "аlice",
            "AIice",
            "a1ice",
            "ａｌｉｃｅ",
            "аlicе",
        ] {
            assert_eq!(name_key(fake), alice, "{fake}");
        }
        assert_ne!(name_key("alice2"), alice);
        assert_eq!(name_key("李雷"), "李雷");
    }

    #[test]
    fn nul_bytes_are_refused() {
        assert!(check_text("fine \u{1b}[31m").is_ok());
        let e = check_text("a\0b").unwrap_err();
        assert_eq!(e, TextError::NulByte { at: 1 });
        assert_eq!(e.to_string(), "message holds a NUL byte (at byte 1)");
    }

    #[test]
    fn name_errors_read_as_before() {
        assert_eq!(validate_name("").unwrap_err().to_string(), "name is empty");
        assert_eq!(
            validate_name(&"x".repeat(33)).unwrap_err().to_string(),
            "name is longer than 32 characters"
        );
        assert_eq!(
            validate_name("a b").unwrap_err().to_string(),
            "name may only hold letters, digits, '_', '-' and '.' (not ' ')"
        );
        assert_eq!(
            validate_name("Server").unwrap_err(),
            NameError::Reserved("Server".into())
        );
        assert_eq!(
            validate_name("Server").unwrap_err().to_string(),
            "the name \"Server\" is reserved"
        );
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("alice").is_ok());
        assert!(validate_name("李雷").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("Server").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("evil\u{1b}[2J").is_err());
        assert!(validate_name(&"x".repeat(33)).is_err());
        assert!(validate_name("Ѕerver").is_err(), "Cyrillic Ѕ");
        assert!(validate_name("ＳＥＲＶＥＲ").is_err(), "fullwidth");
        assert!(validate_name("y0u").is_err());
        assert!(validate_name("𝐚lice").is_err(), "mathematical bold");
        assert!(validate_name("a\u{200b}b").is_err(), "zero-width space");
        assert!(validate_name("a\u{301}").is_err(), "combining mark");
        assert_eq!(sanitize_name("j doe!"), "jdoe");
        assert_eq!(sanitize_name("!!"), "guest");
    }
}
