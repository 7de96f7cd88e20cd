//! Typo-checked text form of 32-byte identifiers, in the style of Syncthing
//! device IDs.
//!
//! ```text
//! 32 bytes ──base32 (RFC 4648, A-Z2-7, no padding)──► 52 chars
//!          ──split into 4 groups of 13, append 1 Luhn mod 32 check char each──► 56 chars
//!          ──print as 8 blocks of 7 joined by '-'──► "XXXXXXX-XXXXXXX-…-XXXXXXX" (63 chars)
//! ```
//!
//! Check group *g* (1–4) is printed blocks `2g-1` and `2g`, so a
//! [`IdCodeError::CheckMismatch`] can tell the user which 14 characters to
//! re-read.
//!
//! # What the check characters catch
//!
//! The check character of each group is computed with the
//! [Luhn mod N algorithm](https://en.wikipedia.org/wiki/Luhn_mod_N_algorithm)
//! over the base32 alphabet (N = 32), weighting from the right as the
//! algorithm specifies. Within a 14-character check group (data + check
//! character) this detects:
//!
//! * every single-character substitution, and
//! * every transposition of two adjacent different characters **except**
//!   `A7` ↔ `7A` (the values 0 and 31, Luhn's analogue of `09` ↔ `90` in
//!   decimal).
//!
//! Syncthing applies the weights from the left instead, which leaves the last
//! data character and the check character unprotected against transposition;
//! the standard right-to-left weighting used here protects that pair too.
//! Codes are therefore *not* interchangeable with Syncthing device IDs.
//!
//! # Parsing is tolerant
//!
//! [`decode`] ignores dashes and whitespace and accepts lower case, so
//! `"abcdefg hijklmn…"` and `"ABCDEFGHIJKLMN…"` parse the same as the printed
//! form. The check characters are always required.

use data_encoding::BASE32_NOPAD;

use crate::error::IdCodeError;

/// The base32 alphabet of RFC 4648; a symbol's value is its index here.
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Number of symbols in [`ALPHABET`], the N of Luhn mod N.
const RADIX: u32 = 32;
/// Length of the identifiers this module encodes.
pub const ID_LEN: usize = 32;
/// Base32 characters of a 32-byte identifier: ceil(256 / 5).
const DATA_CHARS: usize = 52;
/// Data characters per check group: 52 characters split into 4 equal groups.
const GROUP_DATA_CHARS: usize = 13;
/// Characters per check group including its check character.
const GROUP_CHARS: usize = GROUP_DATA_CHARS + 1;
/// Number of check groups, each with its own check character.
const GROUPS: usize = DATA_CHARS / GROUP_DATA_CHARS;
/// Characters of a code, not counting separators: data plus one check character per group.
pub const CODE_CHARS: usize = DATA_CHARS + GROUPS;
/// Characters per printed block: short enough to read out and compare at a glance.
const BLOCK_CHARS: usize = 7;
/// Length of the printed form: 8 blocks of 7 plus 7 dashes.
pub const PRINTED_LEN: usize = CODE_CHARS + CODE_CHARS / BLOCK_CHARS - 1;

/// Encodes 32 bytes as a 63-character code: 8 blocks of 7 characters joined
/// by `-`, each pair of blocks ending in a check character.
///
/// ```
/// let code = rhizo_core::idcode::encode(&[0u8; 32]);
/// assert_eq!(code.len(), 63);
/// assert_eq!(rhizo_core::idcode::decode(&code), Ok([0u8; 32]));
/// ```
pub fn encode(bytes: &[u8; ID_LEN]) -> String {
    let mut data = [0u8; DATA_CHARS];
    BASE32_NOPAD.encode_mut(bytes, &mut data);

    let mut code = [0u8; CODE_CHARS];
    for (group, out) in data
        .chunks_exact(GROUP_DATA_CHARS)
        .zip(code.chunks_exact_mut(GROUP_CHARS))
    {
        let mut values = [0u8; GROUP_DATA_CHARS];
        for (value, &symbol) in values.iter_mut().zip(group) {
            // data-encoding only emits alphabet symbols, so the default is never used.
            *value = symbol_value(symbol).unwrap_or_default();
        }
        let (data_out, check_out) = out.split_at_mut(GROUP_DATA_CHARS);
        data_out.copy_from_slice(group);
        check_out.fill(symbol(luhn_check_value(&values)));
    }

    let mut printed = String::with_capacity(PRINTED_LEN);
    for (i, block) in code.chunks_exact(BLOCK_CHARS).enumerate() {
        if i > 0 {
            printed.push('-');
        }
        printed.extend(block.iter().map(|&b| char::from(b)));
    }
    printed
}

/// Decodes a code produced by [`encode`].
///
/// Dashes and whitespace are ignored and lower case is accepted. The code must
/// contain exactly 56 base32 characters including the 4 check characters.
///
/// # Errors
///
/// * [`IdCodeError::WrongLength`] if there are not exactly 56 characters
///   besides dashes and whitespace (checked first).
/// * [`IdCodeError::InvalidCharacter`] naming the first character outside
///   A–Z / a–z / 2–7.
/// * [`IdCodeError::CheckMismatch`] naming the first group whose check
///   character does not match — almost always a typo.
/// * [`IdCodeError::NonCanonical`] if the checks pass but the code is not the
///   canonical encoding of 32 bytes.
///
/// Never panics, whatever the input.
pub fn decode(s: &str) -> Result<[u8; ID_LEN], IdCodeError> {
    let actual = s.chars().filter(|&c| !is_separator(c)).count();
    if actual != CODE_CHARS {
        return Err(IdCodeError::WrongLength {
            expected: CODE_CHARS,
            actual,
        });
    }

    let mut values = [0u8; CODE_CHARS];
    let symbols = s.chars().enumerate().filter(|&(_, c)| !is_separator(c));
    for (slot, (index, character)) in values.iter_mut().zip(symbols) {
        *slot = u8::try_from(character)
            .ok()
            .and_then(|b| symbol_value(b.to_ascii_uppercase()))
            .ok_or(IdCodeError::InvalidCharacter {
                character,
                position: index + 1,
            })?;
    }

    let mut data = [0u8; DATA_CHARS];
    for (group_index, (group, data_out)) in values
        .chunks_exact(GROUP_CHARS)
        .zip(data.chunks_exact_mut(GROUP_DATA_CHARS))
        .enumerate()
    {
        let (group_data, check) = group.split_at(GROUP_DATA_CHARS);
        if check != [luhn_check_value(group_data)] {
            return Err(IdCodeError::CheckMismatch {
                group: group_index + 1,
            });
        }
        for (out, &value) in data_out.iter_mut().zip(group_data) {
            *out = symbol(value);
        }
    }

    let mut bytes = [0u8; ID_LEN];
    BASE32_NOPAD
        .decode_mut(&data, &mut bytes)
        .map_err(|_| IdCodeError::NonCanonical)?;
    Ok(bytes)
}

/// Characters that [`decode`] skips: the printed separator and any whitespace
/// picked up when copying.
fn is_separator(c: char) -> bool {
    c == '-' || c.is_whitespace()
}

/// Value (0–31) of an upper-case base32 symbol, `None` for anything else.
fn symbol_value(symbol: u8) -> Option<u8> {
    match symbol {
        b'A'..=b'Z' => Some(symbol - b'A'),
        b'2'..=b'7' => Some(symbol - b'2' + 26),
        _ => None,
    }
}

/// Base32 symbol of a value; only the low 5 bits are used.
fn symbol(value: u8) -> u8 {
    ALPHABET[usize::from(value & 0x1f)]
}

/// Luhn mod 32 check value for `values` (each 0–31): the value that, appended
/// on the right, makes the Luhn sum of the whole sequence divisible by 32.
///
/// Weights alternate 2, 1, 2, … starting with the rightmost data value, and a
/// doubled value is reduced by summing its base-32 "digits".
fn luhn_check_value(values: &[u8]) -> u8 {
    let mut sum = 0u32;
    for (i, &value) in values.iter().rev().enumerate() {
        let factor = if i % 2 == 0 { 2 } else { 1 };
        let addend = factor * u32::from(value);
        sum += addend / RADIX + addend % RADIX;
    }
    let check = (RADIX - sum % RADIX) % RADIX;
    // `check` is below RADIX (32), so it always fits; the fallback is unreachable.
    u8::try_from(check).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A few fixed identifiers with varied symbols.
    fn samples() -> Vec<[u8; ID_LEN]> {
        let mut counting = [0u8; ID_LEN];
        for (i, b) in counting.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        vec![[0u8; ID_LEN], [0xff; ID_LEN], [0x5a; ID_LEN], counting]
    }

    /// The code without separators, as ASCII bytes.
    fn compact(bytes: &[u8; ID_LEN]) -> Vec<u8> {
        encode(bytes).bytes().filter(|&b| b != b'-').collect()
    }

    fn decode_compact(code: &[u8]) -> Result<[u8; ID_LEN], IdCodeError> {
        decode(std::str::from_utf8(code).expect("ASCII"))
    }

    #[test]
    fn constants_agree_with_base32() {
        assert_eq!(BASE32_NOPAD.encode_len(ID_LEN), DATA_CHARS);
        assert_eq!(BASE32_NOPAD.decode_len(DATA_CHARS), Ok(ID_LEN));
        assert_eq!(GROUPS * GROUP_DATA_CHARS, DATA_CHARS);
        assert_eq!(CODE_CHARS, 56);
        assert_eq!(PRINTED_LEN, 63);
    }

    #[test]
    fn printed_form_is_eight_blocks_of_seven() {
        for bytes in samples() {
            let code = encode(&bytes);
            assert_eq!(code.len(), PRINTED_LEN);
            let blocks: Vec<&str> = code.split('-').collect();
            assert_eq!(blocks.len(), 8);
            for block in blocks {
                assert_eq!(block.len(), BLOCK_CHARS);
                assert!(block.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
            }
        }
    }

    #[test]
    fn fixed_vector() {
        // All-zero data is all 'A' (value 0), whose Luhn check value is 0 ('A') too.
        assert_eq!(
            encode(&[0u8; ID_LEN]),
            "AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA"
        );
    }

    #[test]
    fn luhn_check_value_matches_worked_example() {
        // Hand computation for values [1, 2, 3] ("BCD"): from the right,
        // 3*2=6, 2*1=2, 1*2=2, sum 10, check (32 - 10) % 32 = 22 ('W').
        assert_eq!(luhn_check_value(&[1, 2, 3]), 22);
        // Doubling folds: 31*2 = 62 = 1*32 + 30 → 1 + 30 = 31, check 1.
        assert_eq!(luhn_check_value(&[31]), 1);
    }

    #[test]
    fn round_trip_samples() {
        for bytes in samples() {
            assert_eq!(decode(&encode(&bytes)), Ok(bytes));
        }
    }

    #[test]
    fn tolerant_forms_decode() {
        for bytes in samples() {
            let code = encode(&bytes);
            let lower = code.to_lowercase();
            let no_dash = code.replace('-', "");
            let spaced = code.replace('-', " ");
            let messy = format!("  {}\n", lower.replace('-', " - "));
            for form in [&lower, &no_dash, &spaced, &messy] {
                assert_eq!(decode(form), Ok(bytes), "{form:?}");
            }
        }
    }

    #[test]
    fn every_single_substitution_is_caught_by_its_group_check() {
        for bytes in samples() {
            let code = compact(&bytes);
            for position in 0..CODE_CHARS {
                for &replacement in ALPHABET.iter().filter(|&&s| s != code[position]) {
                    let mut typo = code.clone();
                    typo[position] = replacement;
                    assert_eq!(
                        decode_compact(&typo),
                        Err(IdCodeError::CheckMismatch {
                            group: position / GROUP_CHARS + 1
                        }),
                        "substitution at {position} not caught"
                    );
                }
            }
        }
    }

    /// The one pair of symbols whose adjacent transposition Luhn mod 32 misses.
    fn is_luhn_blind_pair(a: u8, b: u8) -> bool {
        matches!((a, b), (b'A', b'7') | (b'7', b'A'))
    }

    /// Asserts that swapping each adjacent pair of different characters of
    /// `bytes`' code is rejected, except the documented `A7` blind spot within
    /// one check group.
    fn assert_transpositions_caught(bytes: &[u8; ID_LEN]) {
        let code = compact(bytes);
        for i in 0..CODE_CHARS - 1 {
            let (a, b) = (code[i], code[i + 1]);
            let same_group = i / GROUP_CHARS == (i + 1) / GROUP_CHARS;
            if a == b || (same_group && is_luhn_blind_pair(a, b)) {
                continue;
            }
            let mut typo = code.clone();
            typo.swap(i, i + 1);
            assert!(
                decode_compact(&typo).is_err(),
                "transposition at {i} not caught in {}",
                encode(bytes)
            );
        }
    }

    #[test]
    fn adjacent_transpositions_are_caught() {
        for bytes in samples() {
            assert_transpositions_caught(&bytes);
        }
    }

    #[test]
    fn a7_transposition_is_the_documented_blind_spot() {
        // Data starting "A7…" (value 0 then 31) in group 1.
        let mut data = [b'A'; DATA_CHARS];
        data[1] = b'7';
        let mut bytes = [0u8; ID_LEN];
        BASE32_NOPAD
            .decode_mut(&data, &mut bytes)
            .expect("canonical base32");
        let mut code = compact(&bytes);
        assert_eq!(&code[..2], b"A7");
        code.swap(0, 1);
        let swapped = decode_compact(&code).expect("Luhn mod 32 cannot see A7 <-> 7A");
        assert_ne!(swapped, bytes);
    }

    #[test]
    fn wrong_length_says_expected_length() {
        let code = encode(&[1u8; ID_LEN]);
        let short = &code[..code.len() - 1];
        let err = decode(short).expect_err("too short");
        assert_eq!(
            err,
            IdCodeError::WrongLength {
                expected: 56,
                actual: 55
            }
        );
        assert!(err.to_string().contains("expected 56 characters"), "{err}");

        let long = format!("{code}A");
        assert_eq!(
            decode(&long),
            Err(IdCodeError::WrongLength {
                expected: 56,
                actual: 57
            })
        );
        assert_eq!(
            decode(""),
            Err(IdCodeError::WrongLength {
                expected: 56,
                actual: 0
            })
        );
    }

    #[test]
    fn invalid_character_is_named() {
        let code = encode(&[1u8; ID_LEN]);
        // Position 9 (1-based) is the second character of block 2, after one dash.
        let typo: String = code
            .chars()
            .enumerate()
            .map(|(i, c)| if i == 8 { '0' } else { c })
            .collect();
        let err = decode(&typo).expect_err("0 is not base32");
        assert_eq!(
            err,
            IdCodeError::InvalidCharacter {
                character: '0',
                position: 9
            }
        );
        assert!(err.to_string().contains("'0'"), "{err}");

        let accented = code.replacen('A', "É", 1);
        assert!(matches!(
            decode(&accented),
            Err(IdCodeError::InvalidCharacter {
                character: 'É', ..
            })
        ));
    }

    #[test]
    fn check_mismatch_names_group_and_blocks() {
        let mut code = compact(&[3u8; ID_LEN]);
        // Position 30 is in check group 3 (positions 28..42), printed blocks 5 and 6.
        code[30] = if code[30] == b'B' { b'C' } else { b'B' };
        let err = decode_compact(&code).expect_err("typo");
        assert_eq!(err, IdCodeError::CheckMismatch { group: 3 });
        let message = err.to_string();
        assert!(message.contains("group 3"), "{message}");
        assert!(message.contains("blocks 5 and 6"), "{message}");
        assert!(message.contains("probably a typo"), "{message}");
    }

    #[test]
    fn non_canonical_trailing_bits_are_rejected() {
        // The last data character carries 1 data bit and 4 zero bits; set one of those.
        let mut data = [b'A'; DATA_CHARS];
        data[DATA_CHARS - 1] = b'B';
        let mut code = Vec::with_capacity(CODE_CHARS);
        for group in data.chunks_exact(GROUP_DATA_CHARS) {
            code.extend_from_slice(group);
            let values: Vec<u8> = group.iter().filter_map(|&s| symbol_value(s)).collect();
            code.push(symbol(luhn_check_value(&values)));
        }
        assert_eq!(decode_compact(&code), Err(IdCodeError::NonCanonical));
    }

    proptest! {
        #[test]
        fn round_trip(bytes in any::<[u8; ID_LEN]>()) {
            prop_assert_eq!(decode(&encode(&bytes)), Ok(bytes));
            prop_assert_eq!(decode(&encode(&bytes).to_lowercase().replace('-', "")), Ok(bytes));
        }

        #[test]
        fn transpositions_caught(bytes in any::<[u8; ID_LEN]>()) {
            assert_transpositions_caught(&bytes);
        }

        #[test]
        fn never_panics_on_arbitrary_strings(s in any::<String>()) {
            let _ = decode(&s);
        }

        #[test]
        fn never_panics_on_near_codes(s in "[A-Za-z0-9 \\-é]{50,70}") {
            let _ = decode(&s);
        }

        #[test]
        fn never_panics_on_mutated_codes(
            bytes in any::<[u8; ID_LEN]>(),
            position in 0..PRINTED_LEN,
            replacement in any::<char>(),
        ) {
            let mutated: String = encode(&bytes)
                .chars()
                .enumerate()
                .map(|(i, c)| if i == position { replacement } else { c })
                .collect();
            if let Ok(decoded) = decode(&mutated) {
                prop_assert!(
                    decoded == bytes,
                    "a single changed character decoded to different bytes"
                );
            }
        }
    }
}
