//! Every case of the vendored Wycheproof files (`tests/wycheproof/`) through
//! the crates rhizo links, at the versions in `Cargo.lock`.
//!
//! Rules (see `rhizo_vectors::Tally`): a `valid` case must be accepted with
//! exactly the expected output, an `invalid` case must be rejected, an
//! `acceptable` case may go either way but, if accepted, must give exactly
//! the expected output. Cases a path cannot express are skipped with a
//! counted reason; run + skipped must equal the file's `numberOfTests`.
//!
//! `cargo test -p rhizo-vectors -- --nocapture` prints the tallies.

use hpke_rs_crypto::HpkeCrypto;
use hpke_rs_crypto::types::KemAlgorithm;
use hpke_rs_rust_crypto::HpkeRustCrypto;
use openmls::prelude::{AeadType, OpenMlsCrypto, OpenMlsProvider, SignatureScheme};
use openmls_rust_crypto::OpenMlsRustCrypto;
use rhizo_vectors::{
    AeadGroup, AeadTest, EddsaGroup, Expected, MlKemDecapsTest, MlKemEncapsTest, MlKemGroup,
    MlKemKeyGenTest, MlKemTest, Outcome, Tally, XdhGroup, load,
};

fn arr32(v: &[u8]) -> Option<[u8; 32]> {
    v.try_into().ok()
}

// ---------------------------------------------------------------------------
// Ed25519
// ---------------------------------------------------------------------------

/// Runs `verify` over every case of `ed25519_test.json`.
fn ed25519_run(label: &str, verify: impl Fn(&[u8], &[u8], &[u8]) -> Result<(), String>) {
    let file = load::<EddsaGroup>("ed25519_test.json");
    assert_eq!(file.algorithm, "EDDSA");
    let mut tally = Tally::new(label, file.number_of_tests);
    for group in &file.test_groups {
        assert_eq!(group.public_key.curve, "edwards25519");
        for t in &group.tests {
            let outcome = match verify(&group.public_key.pk, &t.msg, &t.sig) {
                Ok(()) => Outcome::Accepted,
                Err(why) => Outcome::Rejected(why),
            };
            tally.record(t.tc_id, &t.comment, t.result, outcome);
        }
    }
    tally.finish(file.number_of_tests);
}

/// rhizo-core's path: ed25519-dalek 3, `VerifyingKey::from_bytes` +
/// `Signature::from_bytes` + `verify_strict` (see
/// `rhizo-core/src/identity/keys.rs`). rhizo-core takes fixed-size arrays,
/// so a wrong-length key or signature cannot reach the verifier: such cases
/// are rejected here at the same conversion rhizo-core's callers do.
#[test]
fn ed25519_dalek3_verify_strict() {
    use ed25519_dalek::{Signature, VerifyingKey};
    ed25519_run(
        "ed25519_test.json via ed25519-dalek 3.0.0 VerifyingKey::verify_strict (rhizo-core)",
        |pk, msg, sig| {
            let pk: [u8; 32] = pk.try_into().map_err(|_| "public key length")?;
            let sig: [u8; 64] = sig.try_into().map_err(|_| "signature length")?;
            let key = VerifyingKey::from_bytes(&pk).map_err(|e| format!("public key: {e}"))?;
            key.verify_strict(msg, &Signature::from_bytes(&sig))
                .map_err(|e| format!("verify_strict: {e}"))
        },
    );
}

/// The exact path MLS uses for credential and message signatures:
/// openmls_rust_crypto's `OpenMlsCrypto::verify_signature(ED25519, ..)`
/// (ed25519-dalek 2.2.0 `verify_strict` underneath).
#[test]
fn ed25519_openmls_provider_verify_signature() {
    let provider = OpenMlsRustCrypto::default();
    ed25519_run(
        "ed25519_test.json via openmls_rust_crypto 0.6.0 OpenMlsCrypto::verify_signature(ED25519)",
        |pk, msg, sig| {
            provider
                .crypto()
                .verify_signature(SignatureScheme::ED25519, msg, pk, sig)
                .map_err(|e| format!("{e:?}"))
        },
    );
}

// ---------------------------------------------------------------------------
// X25519
// ---------------------------------------------------------------------------
//
// `x25519_test.json` has only `valid` and `acceptable` cases. The acceptable
// ones are public keys a library may refuse: points on the twist, low-order
// points (flags `LowOrderPublic`, `ZeroSharedSecret`: the shared secret is
// all zero), non-canonical u >= p (`NonCanonicalPublic`), `SmallPublicKey`,
// `SpecialPublicKey`, ... RFC 7748 section 6.1 lets a protocol check for the
// all-zero output; section 5 defines the value for non-canonical inputs.
//
// * x25519-dalek (2 and 3) never refuses: it computes RFC 7748 X25519 for
//   every input (so every case must match `shared` exactly) and reports the
//   all-zero output through `SharedSecret::was_contributory() == false`. We
//   assert `was_contributory()` is false exactly when `shared` is all zero:
//   i.e. for the `ZeroSharedSecret`/low-order cases and for nothing else.
// * hpke-rs-rust-crypto's `dh(DhKem25519)` (HPKE DHKEM(X25519), RFC 9180
//   section 7.1.4) rejects exactly the all-zero output. We assert it rejects
//   exactly when `shared` is all zero and otherwise returns `shared`.
// * X-Wing's X25519 half (x25519-dalek 3 inside x-wing 0.1.1, the
//   `DecapsulationKey` hpke-rs uses) accepts the non-contributory output; the
//   X-Wing combiner hashes ss_X with ct_X and pk_X and ML-KEM's secret, so the
//   hybrid stays secure as long as ML-KEM is (draft-connolly-cfrg-xwing-kem).

/// Runs `dh(private, public) -> Ok((shared, contributory?)) | Err` over
/// every case, with the contributory/zero rule described above.
fn x25519_run(
    label: &str,
    dh: impl Fn([u8; 32], [u8; 32]) -> Result<([u8; 32], Option<bool>), String>,
    rejects_zero: bool,
) {
    let file = load::<XdhGroup>("x25519_test.json");
    assert_eq!(file.algorithm, "XDH");
    let mut tally = Tally::new(label, file.number_of_tests);
    for group in &file.test_groups {
        assert_eq!(group.curve, "curve25519");
        for t in &group.tests {
            let (Some(sk), Some(pk), Some(expected)) =
                (arr32(&t.private), arr32(&t.public), arr32(&t.shared))
            else {
                // The file has no such case today; a future one would be a
                // malformed-length case, which these APIs cannot express.
                tally.skip("private/public/shared not 32 bytes");
                continue;
            };
            let zero = expected == [0u8; 32];
            let outcome = match dh(sk, pk) {
                Ok((got, _)) if got != expected => Outcome::WrongOutput(format!(
                    "shared {} != expected {}",
                    hex::encode(got),
                    hex::encode(expected)
                )),
                Ok((_, Some(contributory))) if contributory == zero => Outcome::WrongOutput(
                    format!("was_contributory() = {contributory} for shared all-zero = {zero}"),
                ),
                Ok(_) if rejects_zero && zero => {
                    Outcome::WrongOutput("all-zero shared secret not rejected".into())
                }
                Ok(_) => Outcome::Accepted,
                Err(why) if rejects_zero && !zero => {
                    Outcome::WrongOutput(format!("rejected a non-zero shared secret: {why}"))
                }
                Err(why) => Outcome::Rejected(why),
            };
            tally.record(t.tc_id, &t.comment, t.result, outcome);
        }
    }
    tally.finish(file.number_of_tests);
}

/// x25519-dalek 2.0.1, the crate hpke-rs-rust-crypto uses for HPKE
/// DHKEM(X25519) (classic MLS ciphersuites).
#[test]
fn x25519_dalek2_static_secret() {
    use x25519_dalek_2::{PublicKey, StaticSecret};
    x25519_run(
        "x25519_test.json via x25519-dalek 2.0.1 StaticSecret::diffie_hellman",
        |sk, pk| {
            let ss = StaticSecret::from(sk).diffie_hellman(&PublicKey::from(pk));
            Ok((*ss.as_bytes(), Some(ss.was_contributory())))
        },
        false,
    );
}

/// x25519-dalek 3.0.0, the crate x-wing 0.1.1 uses for the X25519 half of
/// X-Wing (rhizo's ciphersuite).
#[test]
fn x25519_dalek3_static_secret_xwing() {
    use x25519_dalek::{PublicKey, StaticSecret};
    x25519_run(
        "x25519_test.json via x25519-dalek 3.0.0 StaticSecret::diffie_hellman (X-Wing)",
        |sk, pk| {
            let ss = StaticSecret::from(sk).diffie_hellman(&PublicKey::from(pk));
            Ok((*ss.as_bytes(), Some(ss.was_contributory())))
        },
        false,
    );
}

/// hpke-rs-rust-crypto 0.7.0 `HpkeCrypto::dh(DhKem25519)`: what HPKE
/// DHKEM(X25519) in openmls_rust_crypto calls.
#[test]
fn x25519_hpke_rs_rust_crypto_dh() {
    x25519_run(
        "x25519_test.json via hpke-rs-rust-crypto 0.7.0 HpkeCrypto::dh(DhKem25519)",
        |sk, pk| {
            let ss = HpkeRustCrypto::dh(KemAlgorithm::DhKem25519, &pk, &sk)
                .map_err(|e| format!("{e:?}"))?;
            let ss: [u8; 32] = ss
                .try_into()
                .map_err(|v: Vec<u8>| format!("shared secret of {} bytes", v.len()))?;
            Ok((ss, None))
        },
        true,
    );
}

// ---------------------------------------------------------------------------
// AEADs
// ---------------------------------------------------------------------------

/// Checks one AEAD case with `seal(key, iv, aad, msg) -> ct||tag` and
/// `open(key, iv, aad, ct||tag) -> msg`. Valid: both must round-trip to the
/// expected bytes. Invalid (modified tags etc.): `open` must fail.
fn aead_check(
    t: &AeadTest,
    seal: impl Fn(&[u8], &[u8], &[u8], &[u8]) -> Result<Vec<u8>, String>,
    open: impl Fn(&[u8], &[u8], &[u8], &[u8]) -> Result<Vec<u8>, String>,
) -> Outcome {
    let mut ct_tag = t.ct.clone();
    ct_tag.extend_from_slice(&t.tag);
    if t.result != Expected::Invalid {
        match seal(&t.key, &t.iv, &t.aad, &t.msg) {
            Ok(got) if got != ct_tag => {
                return Outcome::WrongOutput(format!(
                    "seal gave {} expected {}",
                    hex::encode(got),
                    hex::encode(&ct_tag)
                ));
            }
            Ok(_) => {}
            Err(why) => return Outcome::Rejected(format!("seal: {why}")),
        }
    }
    match open(&t.key, &t.iv, &t.aad, &ct_tag) {
        Ok(pt) if pt != t.msg => Outcome::WrongOutput(format!("open gave {}", hex::encode(pt))),
        Ok(_) => Outcome::Accepted,
        Err(why) => Outcome::Rejected(format!("open: {why}")),
    }
}

/// Runs an AEAD file through `OpenMlsCrypto::aead_encrypt/aead_decrypt`.
///
/// MLS only ever uses 96-bit nonces (derived by the key schedule, never
/// taken from the wire) and 128-bit tags, so other sizes are skipped with a
/// count. They could not be run anyway: openmls_rust_crypto converts the
/// nonce with `GenericArray::from_slice`, which panics (rather than returning
/// an error) on a wrong length; unreachable from MLS for the reason above.
fn aead_openmls_run(file_name: &str, label: &str, pick: impl Fn(usize) -> Option<AeadType>) {
    let file = load::<AeadGroup>(file_name);
    let provider = OpenMlsRustCrypto::default();
    let crypto = provider.crypto();
    let mut tally = Tally::new(label, file.number_of_tests);
    for group in &file.test_groups {
        for t in &group.tests {
            if group.iv_size != 96 || t.iv.len() != 12 {
                tally.skip("ivSize != 96 (MLS nonces are 96-bit)");
                continue;
            }
            if group.tag_size != 128 || t.tag.len() != 16 {
                tally.skip("tagSize != 128 (MLS tags are 128-bit)");
                continue;
            }
            let Some(alg) = pick(group.key_size) else {
                tally.skip(format!(
                    "keySize {} (no MLS ciphersuite uses it)",
                    group.key_size
                ));
                continue;
            };
            let outcome = aead_check(
                t,
                |k, iv, aad, m| {
                    crypto
                        .aead_encrypt(alg, k, m, iv, aad)
                        .map_err(|e| format!("{e:?}"))
                },
                |k, iv, aad, c| {
                    crypto
                        .aead_decrypt(alg, k, c, iv, aad)
                        .map_err(|e| format!("{e:?}"))
                },
            );
            tally.record(t.tc_id, &t.comment, t.result, outcome);
        }
    }
    // At least the 96-bit-IV groups for AES-128/256 or ChaCha20 must run.
    tally.finish(130);
}

#[test]
fn aes_gcm_openmls_provider_aead() {
    aead_openmls_run(
        "aes_gcm_test.json",
        "aes_gcm_test.json via openmls_rust_crypto 0.6.0 OpenMlsCrypto::aead_*(Aes128Gcm/Aes256Gcm)",
        |bits| match bits {
            128 => Some(AeadType::Aes128Gcm),
            256 => Some(AeadType::Aes256Gcm),
            _ => None,
        },
    );
}

#[test]
fn chacha20_poly1305_openmls_provider_aead() {
    aead_openmls_run(
        "chacha20_poly1305_test.json",
        "chacha20_poly1305_test.json via openmls_rust_crypto 0.6.0 OpenMlsCrypto::aead_*(ChaCha20Poly1305)",
        |bits| (bits == 256).then_some(AeadType::ChaCha20Poly1305),
    );
}

/// One case through a RustCrypto `Aead` type directly.
fn aead_direct<A>(t: &AeadTest) -> Outcome
where
    A: aes_gcm::aead::Aead + aes_gcm::aead::KeyInit,
{
    use aes_gcm::aead::Payload;
    use aes_gcm::aead::generic_array::GenericArray;
    let cipher = match A::new_from_slice(&t.key) {
        Ok(c) => c,
        Err(e) => return Outcome::Rejected(format!("key: {e}")),
    };
    // The caller dispatched on the IV length, so this cannot panic.
    let nonce = GenericArray::from_slice(&t.iv);
    aead_check(
        t,
        |_, _, aad, msg| {
            cipher
                .encrypt(nonce, Payload { msg, aad })
                .map_err(|e| e.to_string())
        },
        |_, _, aad, msg| {
            cipher
                .decrypt(nonce, Payload { msg, aad })
                .map_err(|e| e.to_string())
        },
    )
}

/// aes-gcm 0.10.3 (what openmls_rust_crypto and hpke-rs-rust-crypto link)
/// used directly, so every key size (incl. AES-192) and every IV length in
/// the file runs: the crate takes the nonce length as a type parameter and
/// handles non-96-bit IVs with GHASH as SP 800-38D specifies.
///
/// Skipped: the zero-length-IV cases (`ZeroLengthIv`, invalid). With
/// aes-gcm the IV length is a compile-time type (`AesGcm<_, U0>` would have
/// to be written out by the caller), so there is no run-time input to
/// reject; rhizo only instantiates 96-bit nonces.
#[test]
fn aes_gcm_crate_direct() {
    use aes_gcm::AesGcm;
    use aes_gcm::aead::consts::{
        U1, U2, U4, U6, U8, U10, U12, U15, U16, U20, U32, U64, U128, U257,
    };
    use aes_gcm::aes::{Aes128, Aes192, Aes256};

    macro_rules! by_iv {
        ($aes:ty, $t:expr) => {
            match $t.iv.len() {
                1 => Some(aead_direct::<AesGcm<$aes, U1>>($t)),
                2 => Some(aead_direct::<AesGcm<$aes, U2>>($t)),
                4 => Some(aead_direct::<AesGcm<$aes, U4>>($t)),
                6 => Some(aead_direct::<AesGcm<$aes, U6>>($t)),
                8 => Some(aead_direct::<AesGcm<$aes, U8>>($t)),
                10 => Some(aead_direct::<AesGcm<$aes, U10>>($t)),
                12 => Some(aead_direct::<AesGcm<$aes, U12>>($t)),
                15 => Some(aead_direct::<AesGcm<$aes, U15>>($t)),
                16 => Some(aead_direct::<AesGcm<$aes, U16>>($t)),
                20 => Some(aead_direct::<AesGcm<$aes, U20>>($t)),
                32 => Some(aead_direct::<AesGcm<$aes, U32>>($t)),
                64 => Some(aead_direct::<AesGcm<$aes, U64>>($t)),
                128 => Some(aead_direct::<AesGcm<$aes, U128>>($t)),
                257 => Some(aead_direct::<AesGcm<$aes, U257>>($t)),
                _ => None,
            }
        };
    }

    let file = load::<AeadGroup>("aes_gcm_test.json");
    assert_eq!(file.algorithm, "AES-GCM");
    let mut tally = Tally::new(
        "aes_gcm_test.json via aes-gcm 0.10.3 AesGcm<Aes128|192|256, IV-size> directly",
        file.number_of_tests,
    );
    for group in &file.test_groups {
        for t in &group.tests {
            if t.iv.is_empty() {
                tally.skip("ivSize 0 (IV length is a type parameter; no run-time input)");
                continue;
            }
            if group.tag_size != 128 {
                tally.skip("tagSize != 128");
                continue;
            }
            let outcome = match group.key_size {
                128 => by_iv!(Aes128, t),
                192 => by_iv!(Aes192, t),
                256 => by_iv!(Aes256, t),
                _ => None,
            };
            match outcome {
                Some(o) => tally.record(t.tc_id, &t.comment, t.result, o),
                None => tally.skip(format!(
                    "no type instantiated for keySize {} ivSize {}",
                    group.key_size, group.iv_size
                )),
            }
        }
    }
    // Everything but the 6 zero-length-IV cases.
    tally.finish(310);
}

/// chacha20poly1305 0.10.1 (what openmls_rust_crypto and hpke-rs-rust-crypto
/// link) used directly. Its nonce type is fixed at 96 bits, so the
/// `InvalidNonceSize` cases (invalid) have no run-time input to reject and
/// are skipped with a count.
#[test]
fn chacha20_poly1305_crate_direct() {
    let file = load::<AeadGroup>("chacha20_poly1305_test.json");
    assert_eq!(file.algorithm, "CHACHA20-POLY1305");
    let mut tally = Tally::new(
        "chacha20_poly1305_test.json via chacha20poly1305 0.10.1 ChaCha20Poly1305 directly",
        file.number_of_tests,
    );
    for group in &file.test_groups {
        for t in &group.tests {
            if t.iv.len() != 12 {
                tally.skip("ivSize != 96 (nonce size fixed by the type)");
                continue;
            }
            tally.record(
                t.tc_id,
                &t.comment,
                t.result,
                aead_direct::<chacha20poly1305::ChaCha20Poly1305>(t),
            );
        }
    }
    tally.finish(316);
}

// ---------------------------------------------------------------------------
// ML-KEM-768
// ---------------------------------------------------------------------------
//
// openmls_rust_crypto -> hpke-rs-rust-crypto 0.7.0 -> x-wing 0.1.1 ->
// ml-kem 0.3.4 for X-Wing (and ml-kem 0.3.4 directly for HPKE's standalone
// ML-KEM-768). ml-kem has deterministic entry points for everything these
// files need: `DecapsulationKey::from_seed`, `encapsulate_deterministic`,
// and the legacy expanded key import `from_expanded`.

fn check_eq(what: &str, got: &[u8], expected: &[u8]) -> Result<(), Outcome> {
    if got == expected {
        Ok(())
    } else {
        Err(Outcome::WrongOutput(format!(
            "{what}: got {}.. expected {}..",
            hex::encode(&got[..got.len().min(16)]),
            hex::encode(&expected[..expected.len().min(16)])
        )))
    }
}

fn assert_768<T>(groups: &[MlKemGroup<T>]) {
    for g in groups {
        assert_eq!(g.parameter_set, "ML-KEM-768");
    }
}

/// `mlkem_768_test.json` (seed -> keys, then decapsulate, incl. implicit
/// rejection and malformed ciphertext lengths) through ml-kem 0.3.4.
#[test]
fn mlkem768_decaps_ml_kem() {
    use ml_kem::{Decapsulate, DecapsulationKey768, KeyExport, Seed, ml_kem_768::Ciphertext};
    let file = load::<MlKemGroup<MlKemTest>>("mlkem_768_test.json");
    assert_eq!(file.algorithm, "ML-KEM");
    assert_768(&file.test_groups);
    let mut tally = Tally::new(
        "mlkem_768_test.json via ml-kem 0.3.4 DecapsulationKey768::from_seed + decapsulate",
        file.number_of_tests,
    );
    for group in &file.test_groups {
        for t in &group.tests {
            let run = || -> Result<(), Outcome> {
                let seed = Seed::try_from(t.seed.as_slice())
                    .map_err(|_| Outcome::Rejected("seed length".into()))?;
                let dk = DecapsulationKey768::from_seed(seed);
                check_eq("ek", dk.encapsulation_key().to_bytes().as_slice(), &t.ek)?;
                let ct = Ciphertext::try_from(t.c.as_slice())
                    .map_err(|_| Outcome::Rejected("ciphertext length".into()))?;
                check_eq("K", dk.decapsulate(&ct).as_slice(), &t.k)
            };
            let outcome = run().err().unwrap_or(Outcome::Accepted);
            tally.record(t.tc_id, &t.comment, t.result, outcome);
        }
    }
    tally.finish(file.number_of_tests);
}

/// Same file through hpke-rs-rust-crypto 0.7.0's `HpkeCrypto`
/// (`kem_key_gen_derand` + `kem_decaps` for `MlKem768`): HPKE's standalone
/// ML-KEM-768, whose secret keys are the 64-byte seeds.
#[test]
fn mlkem768_decaps_hpke_rs_rust_crypto() {
    let file = load::<MlKemGroup<MlKemTest>>("mlkem_768_test.json");
    let mut tally = Tally::new(
        "mlkem_768_test.json via hpke-rs-rust-crypto 0.7.0 kem_key_gen_derand + kem_decaps(MlKem768)",
        file.number_of_tests,
    );
    for group in &file.test_groups {
        for t in &group.tests {
            let run = || -> Result<(), Outcome> {
                let (ek, sk) = HpkeRustCrypto::kem_key_gen_derand(KemAlgorithm::MlKem768, &t.seed)
                    .map_err(|e| Outcome::Rejected(format!("keygen: {e:?}")))?;
                check_eq("ek", &ek, &t.ek)?;
                check_eq("sk (seed)", &sk, &t.seed)?;
                let k = HpkeRustCrypto::kem_decaps(KemAlgorithm::MlKem768, &t.c, &sk)
                    .map_err(|e| Outcome::Rejected(format!("decaps: {e:?}")))?;
                check_eq("K", &k, &t.k)
            };
            let outcome = run().err().unwrap_or(Outcome::Accepted);
            tally.record(t.tc_id, &t.comment, t.result, outcome);
        }
    }
    tally.finish(file.number_of_tests);
}

/// `mlkem_768_encaps_test.json` (encapsulate with given randomness; reject
/// encapsulation keys failing the FIPS 203 7.2 modulus check or of the wrong
/// length) through ml-kem 0.3.4.
#[test]
fn mlkem768_encaps_ml_kem() {
    use ml_kem::{B32, EncapsulationKey768, Key};
    let file = load::<MlKemGroup<MlKemEncapsTest>>("mlkem_768_encaps_test.json");
    assert_eq!(file.algorithm, "ML-KEM");
    assert_768(&file.test_groups);
    let mut tally = Tally::new(
        "mlkem_768_encaps_test.json via ml-kem 0.3.4 EncapsulationKey768::new + encapsulate_deterministic",
        file.number_of_tests,
    );
    for group in &file.test_groups {
        for t in &group.tests {
            let run = || -> Result<(), Outcome> {
                let ek_bytes = Key::<EncapsulationKey768>::try_from(t.ek.as_slice())
                    .map_err(|_| Outcome::Rejected("ek length".into()))?;
                let ek = EncapsulationKey768::new(&ek_bytes)
                    .map_err(|_| Outcome::Rejected("ek modulus check".into()))?;
                let m = B32::try_from(t.m.as_slice())
                    .map_err(|_| Outcome::Rejected("m length".into()))?;
                let (c, k) = ek.encapsulate_deterministic(&m);
                check_eq("c", c.as_slice(), &t.c)?;
                check_eq("K", k.as_slice(), &t.k)
            };
            let outcome = run().err().unwrap_or(Outcome::Accepted);
            tally.record(t.tc_id, &t.comment, t.result, outcome);
        }
    }
    tally.finish(file.number_of_tests);
}

/// The same encapsulation keys as the ML-KEM half of an X-Wing public key
/// (`ek || pk_X`, pk_X a fixed valid X25519 key), i.e. what a peer's MLS
/// KeyPackage carries in rhizo's ciphersuite:
///
/// * x-wing 0.1.1 `EncapsulationKey::try_from` must reject exactly the
///   invalid ML-KEM keys, and for valid ones `encapsulate_deterministic`
///   with randomness `m || r_X` must produce the file's ML-KEM ciphertext
///   `c` as the first 1088 bytes of the X-Wing ciphertext. (The X-Wing shared
///   secret mixes in X25519, so `K` itself is not comparable.)
/// * hpke-rs-rust-crypto's `HpkeCrypto::kem_encaps` for `XWingDraft06` (the
///   MLS path) and for `MlKem768` (with the bare `ek`) must reject the same
///   invalid keys and accept the valid ones (its randomness comes from its
///   own PRNG, so only acceptance is compared).
#[test]
fn mlkem768_encaps_xwing_and_hpke() {
    use ml_kem::array::Array;
    use ml_kem::array::sizes::U64;
    let file = load::<MlKemGroup<MlKemEncapsTest>>("mlkem_768_encaps_test.json");
    let pk_x = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([7u8; 32]));
    let mut xwing = Tally::new(
        "mlkem_768_encaps_test.json via x-wing 0.1.1 EncapsulationKey (ek || pk_X) + encapsulate_deterministic",
        file.number_of_tests,
    );
    let mut hpke_xwing = Tally::new(
        "mlkem_768_encaps_test.json via hpke-rs-rust-crypto 0.7.0 kem_encaps(XWingDraft06) key validation",
        file.number_of_tests,
    );
    let mut hpke_mlkem = Tally::new(
        "mlkem_768_encaps_test.json via hpke-rs-rust-crypto 0.7.0 kem_encaps(MlKem768) key validation",
        file.number_of_tests,
    );
    let mut prng = HpkeRustCrypto::prng();
    for group in &file.test_groups {
        for t in &group.tests {
            let mut xwing_ek = t.ek.clone();
            xwing_ek.extend_from_slice(pk_x.as_bytes());

            let run = || -> Result<(), Outcome> {
                let ek = x_wing::EncapsulationKey::try_from(xwing_ek.as_slice())
                    .map_err(|_| Outcome::Rejected("X-Wing ek rejected".into()))?;
                let mut rand = t.m.clone();
                rand.extend_from_slice(&[0x42; 32]);
                let rand = Array::<u8, U64>::try_from(rand.as_slice())
                    .map_err(|_| Outcome::Rejected("m length".into()))?;
                let (ct, _) = ek.encapsulate_deterministic(&rand);
                check_eq("ct_M", &ct.as_slice()[..1088], &t.c)
            };
            xwing.record(
                t.tc_id,
                &t.comment,
                t.result,
                run().err().unwrap_or(Outcome::Accepted),
            );

            for (tally, alg, pk, ct_len) in [
                (&mut hpke_xwing, KemAlgorithm::XWingDraft06, &xwing_ek, 1120),
                (&mut hpke_mlkem, KemAlgorithm::MlKem768, &t.ek, 1088),
            ] {
                let outcome = match HpkeRustCrypto::kem_encaps(alg, pk, &mut prng) {
                    Ok((ss, ct)) if ss.len() != 32 || ct.len() != ct_len => {
                        Outcome::WrongOutput(format!("ss {} / ct {} bytes", ss.len(), ct.len()))
                    }
                    Ok(_) => Outcome::Accepted,
                    Err(e) => Outcome::Rejected(format!("{e:?}")),
                };
                tally.record(t.tc_id, &t.comment, t.result, outcome);
            }
        }
    }
    xwing.finish(file.number_of_tests);
    hpke_xwing.finish(file.number_of_tests);
    hpke_mlkem.finish(file.number_of_tests);
}

/// `mlkem_768_keygen_seed_test.json`: seed -> (ek, expanded dk) through
/// ml-kem 0.3.4 (`from_seed`, the deprecated-but-present
/// `ExpandedKeyEncoding::to_expanded_bytes` for the FIPS 203 dk encoding)
/// and hpke-rs-rust-crypto 0.7.0 `kem_key_gen_derand(MlKem768)` (ek only:
/// HPKE keeps the seed as the secret key, never the expanded form).
#[test]
fn mlkem768_keygen_seed() {
    #[allow(deprecated)]
    use ml_kem::ExpandedKeyEncoding;
    use ml_kem::{DecapsulationKey768, KeyExport, Seed};
    let file = load::<MlKemGroup<MlKemKeyGenTest>>("mlkem_768_keygen_seed_test.json");
    assert_eq!(file.algorithm, "ML-KEM");
    assert_768(&file.test_groups);
    let mut direct = Tally::new(
        "mlkem_768_keygen_seed_test.json via ml-kem 0.3.4 from_seed (ek + expanded dk)",
        file.number_of_tests,
    );
    let mut hpke = Tally::new(
        "mlkem_768_keygen_seed_test.json via hpke-rs-rust-crypto 0.7.0 kem_key_gen_derand(MlKem768) (ek)",
        file.number_of_tests,
    );
    for group in &file.test_groups {
        for t in &group.tests {
            let run = || -> Result<(), Outcome> {
                let seed = Seed::try_from(t.seed.as_slice())
                    .map_err(|_| Outcome::Rejected("seed length".into()))?;
                let dk = DecapsulationKey768::from_seed(seed);
                check_eq("ek", dk.encapsulation_key().to_bytes().as_slice(), &t.ek)?;
                #[allow(deprecated)]
                let expanded = dk.to_expanded_bytes();
                check_eq("dk", expanded.as_slice(), &t.dk)
            };
            direct.record(
                t.tc_id,
                &t.comment,
                t.result,
                run().err().unwrap_or(Outcome::Accepted),
            );

            let outcome = match HpkeRustCrypto::kem_key_gen_derand(KemAlgorithm::MlKem768, &t.seed)
            {
                Ok((ek, _)) => check_eq("ek", &ek, &t.ek)
                    .err()
                    .unwrap_or(Outcome::Accepted),
                Err(e) => Outcome::Rejected(format!("{e:?}")),
            };
            hpke.record(t.tc_id, &t.comment, t.result, outcome);
        }
    }
    direct.finish(file.number_of_tests);
    hpke.finish(file.number_of_tests);
}

/// `mlkem_768_semi_expanded_decaps_test.json`: decapsulation with a
/// FIPS 203 expanded decapsulation key, which must be rejected when its
/// length is wrong or its embedded `H(ek)` / `ek` are corrupted (FIPS 203
/// 7.3 input checks), and with ciphertexts of wrong length. Through ml-kem
/// 0.3.4's legacy `from_expanded` import (deprecated but present). rhizo and
/// hpke-rs never import expanded keys (they keep 64-byte seeds), so this is
/// coverage of the linked crate, not of a path rhizo exercises.
#[test]
#[allow(deprecated)] // the expanded-key API is deprecated upstream in favour of seeds
fn mlkem768_semi_expanded_decaps_ml_kem() {
    use ml_kem::array::Array;
    use ml_kem::{Decapsulate, DecapsulationKey768, ml_kem_768::Ciphertext};
    let file = load::<MlKemGroup<MlKemDecapsTest>>("mlkem_768_semi_expanded_decaps_test.json");
    assert_eq!(file.algorithm, "ML-KEM");
    assert_768(&file.test_groups);
    let mut tally = Tally::new(
        "mlkem_768_semi_expanded_decaps_test.json via ml-kem 0.3.4 from_expanded + decapsulate",
        file.number_of_tests,
    );
    for group in &file.test_groups {
        for t in &group.tests {
            let run = || -> Result<(), Outcome> {
                let enc: ml_kem::ml_kem_768::ExpandedDecapsulationKey =
                    Array::try_from(t.dk.as_slice())
                        .map_err(|_| Outcome::Rejected("dk length".into()))?;
                let dk = DecapsulationKey768::from_expanded(&enc)
                    .map_err(|_| Outcome::Rejected("dk validation".into()))?;
                let ct = Ciphertext::try_from(t.c.as_slice())
                    .map_err(|_| Outcome::Rejected("ciphertext length".into()))?;
                check_eq("K", dk.decapsulate(&ct).as_slice(), &t.k)
            };
            let outcome = run().err().unwrap_or(Outcome::Accepted);
            tally.record(t.tc_id, &t.comment, t.result, outcome);
        }
    }
    tally.finish(file.number_of_tests);
}
