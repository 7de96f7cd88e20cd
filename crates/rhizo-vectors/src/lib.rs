//! Test-only crate: the [Wycheproof] test vectors run through the exact
//! crypto crates rhizo links.
//!
//! Nothing here is used at run time. The crate exists so that
//! `cargo test -p rhizo-vectors` feeds every test case of the vendored
//! Wycheproof files (`tests/wycheproof/*.json`, from C2SP/wycheproof
//! `testvectors_v1`, Apache-2.0, see `tests/wycheproof/README.md`) through
//! the same crates, at the same versions (pinned with `=` in `Cargo.toml`
//! to what `Cargo.lock` resolves), that rhizo and its MLS stack
//! (openmls 0.9 + openmls_rust_crypto 0.6, ciphersuite
//! `MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519`) execute.
//!
//! Run it with the per-path tallies printed:
//!
//! ```text
//! cargo test -p rhizo-vectors -- --nocapture
//! ```
//!
//! | file | goes through |
//! | --- | --- |
//! | `ed25519_test.json` | ed25519-dalek 3 `VerifyingKey::verify_strict` (rhizo-core's signatures); `OpenMlsCrypto::verify_signature(ED25519)` of openmls_rust_crypto (ed25519-dalek 2 `verify_strict`, MLS credentials and messages) |
//! | `x25519_test.json` | x25519-dalek 2 `StaticSecret::diffie_hellman` + `was_contributory` and `HpkeCrypto::dh(DhKem25519)` of hpke-rs-rust-crypto (HPKE DHKEM-X25519); x25519-dalek 3 `StaticSecret::diffie_hellman` (the X25519 half of X-Wing) |
//! | `aes_gcm_test.json` | `OpenMlsCrypto::aead_encrypt/aead_decrypt` with `Aes128Gcm`/`Aes256Gcm` (96-bit IVs, 128-bit tags: the only sizes MLS uses); the aes-gcm crate directly for every key and IV size |
//! | `chacha20_poly1305_test.json` | `OpenMlsCrypto::aead_*` with `ChaCha20Poly1305`; the chacha20poly1305 crate directly |
//! | `mlkem_768_test.json` | ml-kem `DecapsulationKey768::from_seed` + `decapsulate`; `HpkeCrypto::kem_key_gen_derand/kem_decaps(MlKem768)` |
//! | `mlkem_768_encaps_test.json` | ml-kem `EncapsulationKey768::new` + `encapsulate_deterministic`; x-wing `EncapsulationKey` (ML-KEM half) + `encapsulate_deterministic`; `HpkeCrypto::kem_encaps(MlKem768 / XWingDraft06)` key validation |
//! | `mlkem_768_keygen_seed_test.json` | ml-kem `from_seed` (ek and expanded dk); `HpkeCrypto::kem_key_gen_derand(MlKem768)` |
//! | `mlkem_768_semi_expanded_decaps_test.json` | ml-kem legacy expanded-key import (`from_expanded`) + `decapsulate` |
//!
//! Each test asserts that no case had an unexpected result and that the
//! number of cases run plus the number skipped (with a stated reason) equals
//! the file's `numberOfTests`, so a parser bug cannot silently skip cases.
//!
//! # rhizo's own wire vectors
//!
//! `tests/rhizo_wire.rs` builds every signed structure rhizo puts on the wire
//! (device certificate, the four DHT records, contact ticket, envelope,
//! delivery receipt, batch frame, mailbox fetch and delete, channel post) from
//! fixed key seeds and compares the bytes with the frozen
//! `tests/rhizo/wire_vectors.json`, which docs/protocol.md quotes: a change to
//! any encoding or signed message fails it.
//!
//! [Wycheproof]: https://github.com/C2SP/wycheproof
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// Folder holding the vendored Wycheproof JSON files.
#[must_use]
pub fn vector_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("wycheproof")
}

/// Reads and parses one vendored Wycheproof file.
///
/// # Panics
/// If the file is missing or does not match the expected schema: a test
/// run must not pass on a file it could not read.
#[must_use]
pub fn load<G: DeserializeOwned>(file: &str) -> WycheproofFile<G> {
    let path = vector_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()))
}

fn de_hex<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = String::deserialize(d)?;
    hex::decode(&s).map_err(serde::de::Error::custom)
}

/// Top level of a Wycheproof `testvectors_v1` file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WycheproofFile<G> {
    /// e.g. `AES-GCM`, `XDH`, `ML-KEM`.
    pub algorithm: String,
    /// Schema file name, e.g. `aead_test_schema_v1.json`.
    pub schema: String,
    /// Total number of test cases over all groups.
    pub number_of_tests: usize,
    /// The test groups.
    pub test_groups: Vec<G>,
}

/// A test case's expected result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expected {
    /// Must be accepted, with exactly the expected output.
    Valid,
    /// Must be rejected.
    Invalid,
    /// May be accepted (then with exactly the expected output) or rejected.
    Acceptable,
}

/// `aead_test_schema_v1.json` group.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AeadGroup {
    /// IV size in bits.
    pub iv_size: usize,
    /// Key size in bits.
    pub key_size: usize,
    /// Tag size in bits.
    pub tag_size: usize,
    /// The cases.
    pub tests: Vec<AeadTest>,
}

/// `aead_test_schema_v1.json` case.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AeadTest {
    /// Case id.
    pub tc_id: u64,
    /// Free-form comment.
    #[serde(default)]
    pub comment: String,
    /// Flags naming the tested property.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Key.
    #[serde(deserialize_with = "de_hex")]
    pub key: Vec<u8>,
    /// IV / nonce.
    #[serde(deserialize_with = "de_hex")]
    pub iv: Vec<u8>,
    /// Associated data.
    #[serde(deserialize_with = "de_hex")]
    pub aad: Vec<u8>,
    /// Plaintext.
    #[serde(deserialize_with = "de_hex")]
    pub msg: Vec<u8>,
    /// Ciphertext without tag.
    #[serde(deserialize_with = "de_hex")]
    pub ct: Vec<u8>,
    /// Tag.
    #[serde(deserialize_with = "de_hex")]
    pub tag: Vec<u8>,
    /// Expected result.
    pub result: Expected,
}

/// `xdh_comp_schema_v1.json` group.
#[derive(Debug, Deserialize)]
pub struct XdhGroup {
    /// `curve25519`.
    pub curve: String,
    /// The cases.
    pub tests: Vec<XdhTest>,
}

/// `xdh_comp_schema_v1.json` case.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct XdhTest {
    /// Case id.
    pub tc_id: u64,
    /// Free-form comment.
    #[serde(default)]
    pub comment: String,
    /// Flags naming the tested property.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Peer's public u-coordinate.
    #[serde(deserialize_with = "de_hex")]
    pub public: Vec<u8>,
    /// Own private scalar (unclamped).
    #[serde(deserialize_with = "de_hex")]
    pub private: Vec<u8>,
    /// Expected shared secret.
    #[serde(deserialize_with = "de_hex")]
    pub shared: Vec<u8>,
    /// Expected result.
    pub result: Expected,
}

/// `eddsa_verify_schema_v1.json` group.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EddsaGroup {
    /// The group's public key.
    pub public_key: EddsaPublicKey,
    /// The cases.
    pub tests: Vec<EddsaTest>,
}

/// Raw EdDSA public key of a group.
#[derive(Debug, Deserialize)]
pub struct EddsaPublicKey {
    /// `edwards25519`.
    pub curve: String,
    /// Encoded point.
    #[serde(deserialize_with = "de_hex")]
    pub pk: Vec<u8>,
}

/// `eddsa_verify_schema_v1.json` case.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EddsaTest {
    /// Case id.
    pub tc_id: u64,
    /// Free-form comment.
    #[serde(default)]
    pub comment: String,
    /// Flags naming the tested property.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Signed message.
    #[serde(deserialize_with = "de_hex")]
    pub msg: Vec<u8>,
    /// Signature.
    #[serde(deserialize_with = "de_hex")]
    pub sig: Vec<u8>,
    /// Expected result.
    pub result: Expected,
}

/// Group of any of the ML-KEM schemas.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MlKemGroup<T> {
    /// `ML-KEM-768` for the vendored files.
    pub parameter_set: String,
    /// The cases.
    pub tests: Vec<T>,
}

/// `mlkem_test_schema.json` case: key from seed, then decapsulate.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MlKemTest {
    /// Case id.
    pub tc_id: u64,
    /// Free-form comment.
    #[serde(default)]
    pub comment: String,
    /// Flags naming the tested property.
    #[serde(default)]
    pub flags: Vec<String>,
    /// 64-byte seed `d || z`.
    #[serde(deserialize_with = "de_hex")]
    pub seed: Vec<u8>,
    /// Encapsulation key derived from `seed` (absent for malformed seeds).
    #[serde(default, deserialize_with = "de_hex")]
    pub ek: Vec<u8>,
    /// Ciphertext to decapsulate.
    #[serde(deserialize_with = "de_hex")]
    pub c: Vec<u8>,
    /// Expected shared key (empty when invalid).
    #[serde(rename = "K", deserialize_with = "de_hex")]
    pub k: Vec<u8>,
    /// Expected result.
    pub result: Expected,
}

/// `mlkem_encaps_test_schema.json` case.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MlKemEncapsTest {
    /// Case id.
    pub tc_id: u64,
    /// Free-form comment.
    #[serde(default)]
    pub comment: String,
    /// Flags naming the tested property.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Encapsulation key.
    #[serde(deserialize_with = "de_hex")]
    pub ek: Vec<u8>,
    /// 32-byte encapsulation randomness.
    #[serde(deserialize_with = "de_hex")]
    pub m: Vec<u8>,
    /// Expected ciphertext (empty when invalid).
    #[serde(deserialize_with = "de_hex")]
    pub c: Vec<u8>,
    /// Expected shared key (empty when invalid).
    #[serde(rename = "K", deserialize_with = "de_hex")]
    pub k: Vec<u8>,
    /// Expected result.
    pub result: Expected,
}

/// `mlkem_keygen_seed_test_schema.json` case.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MlKemKeyGenTest {
    /// Case id.
    pub tc_id: u64,
    /// Free-form comment.
    #[serde(default)]
    pub comment: String,
    /// Flags naming the tested property.
    #[serde(default)]
    pub flags: Vec<String>,
    /// 64-byte seed `d || z`.
    #[serde(deserialize_with = "de_hex")]
    pub seed: Vec<u8>,
    /// Expected encapsulation key.
    #[serde(deserialize_with = "de_hex")]
    pub ek: Vec<u8>,
    /// Expected expanded decapsulation key (FIPS 203 encoding).
    #[serde(deserialize_with = "de_hex")]
    pub dk: Vec<u8>,
    /// Expected result.
    pub result: Expected,
}

/// `mlkem_semi_expanded_decaps_test_schema.json` case.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MlKemDecapsTest {
    /// Case id.
    pub tc_id: u64,
    /// Free-form comment.
    #[serde(default)]
    pub comment: String,
    /// Flags naming the tested property.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Expanded decapsulation key (FIPS 203 encoding).
    #[serde(deserialize_with = "de_hex")]
    pub dk: Vec<u8>,
    /// Ciphertext.
    #[serde(deserialize_with = "de_hex")]
    pub c: Vec<u8>,
    /// Expected shared key (absent when invalid).
    #[serde(default, rename = "K", deserialize_with = "de_hex")]
    pub k: Vec<u8>,
    /// Expected result.
    pub result: Expected,
}

/// What the implementation under test did with one case.
#[derive(Debug)]
pub enum Outcome {
    /// Accepted, and every output matched the expected value.
    Accepted,
    /// Rejected (returned an error), with the reason.
    Rejected(String),
    /// Accepted but produced a wrong output: always a failure.
    WrongOutput(String),
}

/// Counts results for one (file, implementation path) pair and checks them.
#[derive(Debug)]
pub struct Tally {
    label: String,
    expected_total: usize,
    valid_ok: usize,
    invalid_rejected: usize,
    acceptable_accepted: usize,
    acceptable_rejected: usize,
    skipped: BTreeMap<String, usize>,
    failures: Vec<String>,
}

impl Tally {
    /// Starts a tally for `label`, whose file declares `expected_total` cases.
    #[must_use]
    pub fn new(label: impl Into<String>, expected_total: usize) -> Self {
        Self {
            label: label.into(),
            expected_total,
            valid_ok: 0,
            invalid_rejected: 0,
            acceptable_accepted: 0,
            acceptable_rejected: 0,
            skipped: BTreeMap::new(),
            failures: Vec::new(),
        }
    }

    /// Records the outcome of case `tc_id`, expected to be `expected`.
    pub fn record(&mut self, tc_id: u64, comment: &str, expected: Expected, outcome: Outcome) {
        match (expected, outcome) {
            (_, Outcome::WrongOutput(why)) => self.failures.push(format!(
                "tc {tc_id} ({comment}): {expected:?} case, wrong output: {why}"
            )),
            (Expected::Valid, Outcome::Accepted) => self.valid_ok += 1,
            (Expected::Valid, Outcome::Rejected(why)) => self.failures.push(format!(
                "tc {tc_id} ({comment}): valid case rejected: {why}"
            )),
            (Expected::Invalid, Outcome::Rejected(_)) => self.invalid_rejected += 1,
            (Expected::Invalid, Outcome::Accepted) => self
                .failures
                .push(format!("tc {tc_id} ({comment}): invalid case accepted")),
            (Expected::Acceptable, Outcome::Accepted) => self.acceptable_accepted += 1,
            (Expected::Acceptable, Outcome::Rejected(_)) => self.acceptable_rejected += 1,
        }
    }

    /// Records a case that this path does not run, with the reason.
    pub fn skip(&mut self, reason: impl Into<String>) {
        *self.skipped.entry(reason.into()).or_default() += 1;
    }

    /// Number of cases run (not skipped).
    #[must_use]
    pub fn run(&self) -> usize {
        self.valid_ok
            + self.invalid_rejected
            + self.acceptable_accepted
            + self.acceptable_rejected
            + self.failures.len()
    }

    /// Number of valid cases accepted with the right output.
    #[must_use]
    pub fn valid_ok(&self) -> usize {
        self.valid_ok
    }

    /// Number of invalid cases rejected.
    #[must_use]
    pub fn invalid_rejected(&self) -> usize {
        self.invalid_rejected
    }

    /// Number of acceptable cases accepted (with the right output).
    #[must_use]
    pub fn acceptable_accepted(&self) -> usize {
        self.acceptable_accepted
    }

    /// Number of acceptable cases rejected.
    #[must_use]
    pub fn acceptable_rejected(&self) -> usize {
        self.acceptable_rejected
    }

    /// Prints the tally and asserts: no unexpected result, at least
    /// `min_run` cases run, and run + skipped equals the file's total.
    ///
    /// # Panics
    /// On any of those conditions failing.
    pub fn finish(self, min_run: usize) {
        let skipped: usize = self.skipped.values().sum();
        println!(
            "{}: ran {} (valid ok {}, invalid rejected {}, acceptable accepted {} / rejected {}, \
             failures {}), skipped {} {:?}, file total {}",
            self.label,
            self.run(),
            self.valid_ok,
            self.invalid_rejected,
            self.acceptable_accepted,
            self.acceptable_rejected,
            self.failures.len(),
            skipped,
            self.skipped,
            self.expected_total,
        );
        assert!(
            self.failures.is_empty(),
            "{}: {} unexpected result(s):\n{}",
            self.label,
            self.failures.len(),
            self.failures.join("\n")
        );
        assert!(
            self.run() >= min_run,
            "{}: only {} cases ran, expected at least {min_run}",
            self.label,
            self.run()
        );
        assert_eq!(
            self.run() + skipped,
            self.expected_total,
            "{}: cases run + skipped must equal the file's numberOfTests",
            self.label
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{Expected, Outcome, Tally};

    fn one(expected: Expected, outcome: Outcome) {
        let mut t = Tally::new("self-test", 1);
        t.record(1, "", expected, outcome);
        t.finish(1);
    }

    #[test]
    fn expected_results_pass() {
        one(Expected::Valid, Outcome::Accepted);
        one(Expected::Invalid, Outcome::Rejected("x".into()));
        one(Expected::Acceptable, Outcome::Accepted);
        one(Expected::Acceptable, Outcome::Rejected("x".into()));
    }

    #[test]
    #[should_panic(expected = "valid case rejected")]
    fn valid_rejected_fails() {
        one(Expected::Valid, Outcome::Rejected("x".into()));
    }

    #[test]
    #[should_panic(expected = "invalid case accepted")]
    fn invalid_accepted_fails() {
        one(Expected::Invalid, Outcome::Accepted);
    }

    #[test]
    #[should_panic(expected = "wrong output")]
    fn acceptable_wrong_output_fails() {
        one(Expected::Acceptable, Outcome::WrongOutput("x".into()));
    }

    #[test]
    #[should_panic(expected = "only 0 cases ran")]
    fn too_few_run_fails() {
        let mut t = Tally::new("self-test", 1);
        t.skip("reason");
        t.finish(1);
    }

    #[test]
    #[should_panic(expected = "numberOfTests")]
    fn uncounted_cases_fail() {
        let mut t = Tally::new("self-test", 2);
        t.record(1, "", Expected::Valid, Outcome::Accepted);
        t.finish(1);
    }

    #[test]
    fn vendored_files_parse() {
        let f = super::load::<super::AeadGroup>("aes_gcm_test.json");
        assert_eq!(
            f.test_groups.iter().map(|g| g.tests.len()).sum::<usize>(),
            f.number_of_tests
        );
    }
}
