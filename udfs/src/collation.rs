//! Where a character sorts under `SQL_Latin1_General_CP1_CI_AS` for `varchar` data, which is what
//! a `LIKE` range such as `[0-a]` compares by: a character is in `[lo-hi]` when it sorts between
//! them, not when its code point does.
//!
//! SQL collations sort `varchar` by a fixed table (sort order 52, "dictionary order,
//! case-insensitive, for use with the 1252 character set"). Microsoft does not publish the table;
//! what it documents, and what this follows:
//! - a "string sort": every punctuation mark and symbol, hyphen and apostrophe included, sorts
//!   before every digit and letter (so `'=' LIKE '[0-a]'` is false); ASCII marks among themselves
//!   in code-point order, the other marks of code page 1252 after them;
//! - digits before letters, letters in alphabetical order with case ignored (`CI`);
//! - an accented letter right after its base letter and before the next (`AS`, "a, A, à, á, â,
//!   ä, Ä, Å, å": SQL Server 7 Books Online, "Sort order"), so `'á' LIKE '[a-b]'` is true but
//!   `'á' LIKE '[0-a]'` is false.
//!
//! Characters outside code page 1252 sort after all of these, by code point: `varchar` under this
//! collation cannot hold them, so only text that did not come from SQL Server meets them.

/// Sort weight of a case-folded character: a higher weight sorts later; equal weights are the same
/// character to the collation.
pub(crate) fn weight(folded: char) -> u32 {
    const MARKS: u32 = 0;
    const DIGITS: u32 = 0x1_0000;
    const LETTERS: u32 = 0x2_0000;
    const OTHERS: u32 = 0x10_0000;
    let code = u32::from(folded);
    if let Some(digit) = folded.to_digit(10).filter(|_| folded.is_ascii()) {
        return DIGITS + (digit << 8);
    }
    if folded.is_ascii_lowercase() {
        return LETTERS + ((code - u32::from('a')) << 8);
    }
    if folded.is_ascii() {
        return MARKS + code;
    }
    if let Some((base, accent)) = latin_variant(folded) {
        return match base {
            '0'..='9' => DIGITS + (base.to_digit(10).unwrap_or(0) << 8) + accent,
            // þ (thorn) sorts after z.
            '~' => LETTERS + (26 << 8),
            _ => LETTERS + ((u32::from(base) - u32::from('a')) << 8) + accent,
        };
    }
    if code <= 0xFF || is_cp1252_extra(folded) {
        return MARKS + 0x100 + code;
    }
    OTHERS + code
}

/// A code page 1252 letter or digit variant, case-folded, as its base (`'~'` for þ, which sorts
/// after z) and its rank among that base's variants (1 for the first).
fn latin_variant(c: char) -> Option<(char, u32)> {
    const VARIANTS: &[(char, &str)] = &[
        ('a', "àáâãäåæ"),
        ('c', "ç"),
        ('d', "ð"),
        ('e', "èéêë"),
        ('f', "ƒ"),
        ('i', "ìíîï"),
        ('n', "ñ"),
        ('o', "òóôõöøœ"),
        ('s', "ßš"),
        ('u', "ùúûü"),
        ('y', "ýÿ"),
        ('z', "ž"),
        ('~', "þ"),
        ('1', "¹¼½"),
        ('2', "²"),
        ('3', "³¾"),
    ];
    VARIANTS.iter().find_map(|(base, variants)| {
        variants
            .chars()
            .position(|v| v == c)
            .map(|rank| (*base, rank as u32 + 1))
    })
}

/// The characters code page 1252 has at 0x80-0x9F (its difference from Latin-1) that are marks.
fn is_cp1252_extra(c: char) -> bool {
    "€‚„…†‡ˆ‰‹‘’“”•–—˜™›".contains(c)
}

#[cfg(test)]
mod tests {
    use super::weight;
    use crate::pattern::fold;

    fn sorts_before(a: char, b: char) -> bool {
        weight(fold(a)) < weight(fold(b))
    }

    #[test]
    fn marks_then_digits_then_letters() {
        for mark in " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".chars() {
            assert!(sorts_before(mark, '0'), "{mark}");
            assert!(sorts_before(mark, 'a'), "{mark}");
        }
        assert!(sorts_before('9', 'a'));
        assert!(sorts_before('9', 'A'));
        assert!(sorts_before('z', 'þ'));
        assert!(sorts_before('£', '0'));
        assert!(sorts_before('’', '0'));
    }

    #[test]
    fn case_is_ignored_and_accents_follow_their_letter() {
        assert_eq!(weight(fold('A')), weight(fold('a')));
        assert_eq!(weight(fold('É')), weight(fold('é')));
        assert!(sorts_before('a', 'á'));
        assert!(sorts_before('á', 'b'));
        assert!(sorts_before('a', 'æ'));
        assert!(sorts_before('n', 'ñ') && sorts_before('ñ', 'o'));
        assert!(sorts_before('2', '²') && sorts_before('²', '3'));
    }
}
