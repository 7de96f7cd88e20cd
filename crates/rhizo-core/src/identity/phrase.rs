//! The root key as a recovery phrase: its 32-byte seed as 24 BIP-39 English words (256 bits of
//! entropy and an 8-bit checksum), so a user can write it down and recreate the identity on a
//! new device (`rhizo identity export-phrase`, `rhizo init --recover`).

use zeroize::Zeroizing;

use super::{RootKey, SECRET_KEY_LEN};

/// Words in a recovery phrase (256-bit seed).
pub const PHRASE_WORDS: usize = 24;
/// Longest phrase text read: 24 words of at most 8 letters and their separators, with room.
const MAX_PHRASE_CHARS: usize = 1024;

/// Why a recovery phrase was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PhraseError {
    /// Not 24 words.
    #[error("a recovery phrase has 24 words, this one has {0}: copy the whole phrase")]
    WordCount(usize),
    /// A word is not in the BIP-39 English list, or the checksum does not match.
    #[error(
        "the recovery phrase is not valid (a word is misspelt, not in the BIP-39 English list, \
         or two words are swapped): check each word"
    )]
    Invalid,
    /// Far too long to be a phrase.
    #[error("the recovery phrase is too long")]
    TooLong,
}

impl RootKey {
    /// The root key's seed as 24 words separated by single spaces (zeroized on drop).
    pub fn to_phrase(&self) -> Zeroizing<String> {
        let seed = self.to_bytes();
        let mnemonic = bip39::Mnemonic::from_entropy(seed.as_ref())
            .expect("32 bytes is a valid BIP-39 entropy length");
        Zeroizing::new(mnemonic.words().collect::<Vec<_>>().join(" "))
    }

    /// The root key whose phrase is `text` (words separated by any whitespace, any case).
    ///
    /// # Errors
    ///
    /// [`PhraseError`] if it is not 24 valid words with a matching checksum.
    pub fn from_phrase(text: &str) -> Result<Self, PhraseError> {
        if text.len() > MAX_PHRASE_CHARS {
            return Err(PhraseError::TooLong);
        }
        let normalized = Zeroizing::new(
            text.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
                .join(" "),
        );
        let count = normalized.split(' ').filter(|w| !w.is_empty()).count();
        if count != PHRASE_WORDS {
            return Err(PhraseError::WordCount(count));
        }
        let mnemonic = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &normalized)
            .map_err(|_| PhraseError::Invalid)?;
        let (entropy, len) = mnemonic.to_entropy_array();
        let entropy = Zeroizing::new(entropy);
        let seed = <[u8; SECRET_KEY_LEN]>::try_from(entropy.get(..len).unwrap_or_default())
            .map_err(|_| PhraseError::Invalid)?;
        let seed = Zeroizing::new(seed);
        Ok(Self::from_bytes(&seed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phrase_round_trips_and_mistakes_are_refused() {
        let root = RootKey::from_bytes(&[42; 32]);
        let phrase = root.to_phrase();
        assert_eq!(phrase.split(' ').count(), PHRASE_WORDS);
        let back = RootKey::from_phrase(&format!("  {}\n", phrase.to_uppercase())).unwrap();
        assert_eq!(back.public(), root.public());

        let words: Vec<&str> = phrase.split(' ').collect();
        assert_eq!(
            RootKey::from_phrase(&words[..23].join(" ")).err(),
            Some(PhraseError::WordCount(23))
        );
        let mut swapped = words.clone();
        swapped.swap(0, 1);
        if swapped != words {
            assert_eq!(
                RootKey::from_phrase(&swapped.join(" ")).err(),
                Some(PhraseError::Invalid)
            );
        }
        let mut wrong = words.clone();
        wrong[5] = "notaword";
        assert_eq!(
            RootKey::from_phrase(&wrong.join(" ")).err(),
            Some(PhraseError::Invalid)
        );
        assert_eq!(
            RootKey::from_phrase(&"abandon ".repeat(300)).err(),
            Some(PhraseError::TooLong)
        );
    }
}
