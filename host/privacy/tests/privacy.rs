//! Tests of the key hierarchy, envelope encryption and identity hashes via the public API.
//! They must never depend on luck: the fuzz loop uses a fixed seed.

use tessera_privacy::envelope::{self, OVERHEAD, VERSION};
use tessera_privacy::{
    IdentityHasher, KeyWrapError, MasterKey, MasterKeyError, OpenError, RecordAad, SubjectKey,
    TenantKey, WrappedKey, WrappedSubjectKey,
};

const RECORD: RecordAad<'static> = RecordAad {
    tenant: "acme",
    subject: "subj-1",
    kind: "trait",
    id: "email",
};

fn subject_key() -> SubjectKey {
    SubjectKey::generate().expect("the OS has randomness")
}

fn tenant_key() -> TenantKey {
    TenantKey::generate().expect("the OS has randomness")
}

fn master_key() -> MasterKey {
    MasterKey::generate().expect("the OS has randomness")
}

/// A small deterministic generator (xorshift64*) so fuzzing is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

mod envelope_tests {
    use super::*;

    #[test]
    fn a_sealed_record_opens_with_the_same_key_and_record_name() {
        let key = subject_key();
        for plaintext in [&b""[..], b"alice@example.com", &[0u8; 10_000]] {
            let sealed = envelope::seal(&key, &RECORD, plaintext).unwrap();
            assert_eq!(sealed.len(), plaintext.len() + OVERHEAD);
            assert_eq!(sealed[0], VERSION);
            assert_eq!(envelope::open(&key, &RECORD, &sealed).unwrap(), plaintext);
        }
    }

    #[test]
    fn sealing_the_same_plaintext_twice_gives_different_ciphertexts() {
        let key = subject_key();
        let a = envelope::seal(&key, &RECORD, b"same").unwrap();
        let b = envelope::seal(&key, &RECORD, b"same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn the_ciphertext_does_not_contain_the_plaintext() {
        let key = subject_key();
        let plaintext = b"alice@example.com";
        let sealed = envelope::seal(&key, &RECORD, plaintext).unwrap();
        assert!(!sealed.windows(plaintext.len()).any(|w| w == plaintext));
    }

    #[test]
    fn a_record_moved_to_another_tenant_subject_kind_or_id_does_not_open() {
        let key = subject_key();
        let sealed = envelope::seal(&key, &RECORD, b"alice@example.com").unwrap();
        let moved = [
            RecordAad {
                tenant: "globex",
                ..RECORD
            },
            RecordAad {
                subject: "subj-2",
                ..RECORD
            },
            RecordAad {
                kind: "event",
                ..RECORD
            },
            RecordAad {
                id: "phone",
                ..RECORD
            },
        ];
        for aad in moved {
            assert!(
                matches!(
                    envelope::open(&key, &aad, &sealed),
                    Err(OpenError::Rejected)
                ),
                "opened under {aad:?}"
            );
        }
    }

    #[test]
    fn shifting_characters_between_record_name_fields_does_not_open() {
        let key = subject_key();
        let aad = RecordAad {
            tenant: "ab",
            subject: "c",
            kind: "trait",
            id: "x",
        };
        let sealed = envelope::seal(&key, &aad, b"data").unwrap();
        let shifted = [
            RecordAad {
                tenant: "a",
                subject: "bc",
                ..aad
            },
            RecordAad {
                subject: "ctrai",
                kind: "t",
                ..aad
            },
            RecordAad {
                kind: "trai",
                id: "tx",
                ..aad
            },
        ];
        for other in shifted {
            assert_ne!(aad.encode(), other.encode());
            assert!(matches!(
                envelope::open(&key, &other, &sealed),
                Err(OpenError::Rejected)
            ));
        }
    }

    #[test]
    fn a_record_does_not_open_with_another_subject_key() {
        let sealed = envelope::seal(&subject_key(), &RECORD, b"data").unwrap();
        assert!(matches!(
            envelope::open(&subject_key(), &RECORD, &sealed),
            Err(OpenError::Rejected)
        ));
    }

    #[test]
    fn flipping_any_bit_of_a_sealed_record_makes_it_fail_to_open() {
        let key = subject_key();
        let sealed = envelope::seal(&key, &RECORD, b"hello").unwrap();
        for byte in 0..sealed.len() {
            for bit in 0..8 {
                let mut tampered = sealed.clone();
                tampered[byte] ^= 1 << bit;
                let result = envelope::open(&key, &RECORD, &tampered);
                if byte == 0 {
                    assert!(matches!(result, Err(OpenError::UnsupportedVersion { .. })));
                } else {
                    assert!(matches!(result, Err(OpenError::Rejected)));
                }
            }
        }
    }

    #[test]
    fn a_truncated_or_extended_sealed_record_fails_to_open() {
        let key = subject_key();
        let sealed = envelope::seal(&key, &RECORD, b"hello").unwrap();
        for len in 0..sealed.len() {
            let result = envelope::open(&key, &RECORD, &sealed[..len]);
            if len < OVERHEAD {
                assert!(
                    matches!(result, Err(OpenError::TooShort { len: l }) if l == len),
                    "{len}: {result:?}"
                );
            } else {
                assert!(matches!(result, Err(OpenError::Rejected)));
            }
        }
        let mut extended = sealed.clone();
        extended.push(0);
        assert!(envelope::open(&key, &RECORD, &extended).is_err());
    }

    #[test]
    fn an_unknown_format_version_is_refused_with_its_number() {
        let key = subject_key();
        let mut sealed = envelope::seal(&key, &RECORD, b"hello").unwrap();
        sealed[0] = 7;
        let error = envelope::open(&key, &RECORD, &sealed).unwrap_err();
        assert!(matches!(error, OpenError::UnsupportedVersion { found: 7 }));
        assert!(error.to_string().contains("version 7"));
    }

    #[test]
    fn random_bytes_given_to_open_return_errors_and_never_panic() {
        let key = subject_key();
        let valid = envelope::seal(&key, &RECORD, b"some record").unwrap();
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for round in 0..20_000 {
            let len = (rng.next() % 96) as usize;
            let mut input = rng.bytes(len);
            match round % 3 {
                // Pass the version check so the rest of the parser is reached.
                0 if !input.is_empty() => input[0] = VERSION,
                // Mutate a valid record at a few random positions.
                1 => {
                    input = valid.clone();
                    for _ in 0..=(rng.next() % 4) {
                        let at = 1 + (rng.next() as usize) % (input.len() - 1);
                        input[at] ^= (rng.next() as u8) | 1;
                    }
                    // Two flips of one byte may cancel out; keep it altered.
                    if input == valid {
                        input[1] ^= 1;
                    }
                }
                _ => {}
            }
            assert!(envelope::open(&key, &RECORD, &input).is_err());
        }
    }
}

mod key_tests {
    use super::*;

    #[test]
    fn data_sealed_under_a_wrapped_subject_key_opens_after_unwrapping_both_keys() {
        let master = master_key();
        let tenant = tenant_key();
        let subject = subject_key();
        let wrapped_tenant = tenant.wrap(&master, "acme").unwrap();
        let wrapped_subject = subject.wrap(&tenant, "acme", "subj-1").unwrap();
        let sealed = envelope::seal(&subject, &RECORD, b"alice@example.com").unwrap();
        drop((tenant, subject));

        let tenant = TenantKey::unwrap(&wrapped_tenant, &master, "acme").unwrap();
        let subject = SubjectKey::unwrap(&wrapped_subject, &tenant, "acme", "subj-1").unwrap();
        assert_eq!(
            envelope::open(&subject, &RECORD, &sealed).unwrap(),
            b"alice@example.com"
        );
    }

    #[test]
    fn wrapped_keys_survive_a_json_round_trip() {
        let master = master_key();
        let tenant = tenant_key();
        let wrapped = tenant.wrap(&master, "acme").unwrap();
        let json = serde_json::to_string(&wrapped).unwrap();
        let back: WrappedKey = serde_json::from_str(&json).unwrap();
        assert_eq!(back, wrapped);
        assert!(TenantKey::unwrap(&back, &master, "acme").is_ok());

        let wrapped = subject_key().wrap(&tenant, "acme", "subj-1").unwrap();
        let json = serde_json::to_string(&wrapped).unwrap();
        let back: WrappedSubjectKey = serde_json::from_str(&json).unwrap();
        assert!(SubjectKey::unwrap(&back, &tenant, "acme", "subj-1").is_ok());
    }

    #[test]
    fn a_tenant_key_unwrapped_for_another_tenant_is_rejected() {
        let master = master_key();
        let wrapped = tenant_key().wrap(&master, "acme").unwrap();
        let error = TenantKey::unwrap(&wrapped, &master, "globex").unwrap_err();
        assert!(
            matches!(error, KeyWrapError::TenantKeyRejected { ref tenant } if tenant == "globex")
        );
    }

    #[test]
    fn a_tenant_key_unwrapped_with_another_master_key_names_both_key_ids() {
        let (old, new) = (master_key(), master_key());
        let wrapped = tenant_key().wrap(&old, "acme").unwrap();
        let error = TenantKey::unwrap(&wrapped, &new, "acme").unwrap_err();
        assert!(matches!(error, KeyWrapError::WrongMasterKey { .. }));
        let message = error.to_string();
        assert!(
            message.contains(old.id()) && message.contains(new.id()),
            "{message}"
        );
    }

    #[test]
    fn a_tenant_key_with_a_forged_master_key_id_is_rejected() {
        let (old, new) = (master_key(), master_key());
        let mut wrapped = tenant_key().wrap(&old, "acme").unwrap();
        wrapped.master_key_id = new.id().to_owned();
        assert!(matches!(
            TenantKey::unwrap(&wrapped, &new, "acme"),
            Err(KeyWrapError::TenantKeyRejected { .. })
        ));
    }

    #[test]
    fn a_tampered_wrapped_tenant_key_is_rejected() {
        let master = master_key();
        let wrapped = tenant_key().wrap(&master, "acme").unwrap();
        for at in 0..wrapped.ciphertext.len() {
            let mut tampered = wrapped.clone();
            tampered.ciphertext[at] ^= 0x80;
            assert!(TenantKey::unwrap(&tampered, &master, "acme").is_err());
        }
        let mut tampered = wrapped.clone();
        tampered.nonce[0] ^= 1;
        assert!(TenantKey::unwrap(&tampered, &master, "acme").is_err());
        let mut tampered = wrapped.clone();
        tampered.ciphertext.pop();
        assert!(TenantKey::unwrap(&tampered, &master, "acme").is_err());
        tampered.ciphertext.clear();
        assert!(TenantKey::unwrap(&tampered, &master, "acme").is_err());
    }

    #[test]
    fn a_subject_key_unwrapped_for_another_subject_or_tenant_or_tenant_key_is_rejected() {
        let tenant = tenant_key();
        let wrapped = subject_key().wrap(&tenant, "acme", "subj-1").unwrap();
        for result in [
            SubjectKey::unwrap(&wrapped, &tenant, "acme", "subj-2"),
            SubjectKey::unwrap(&wrapped, &tenant, "globex", "subj-1"),
            SubjectKey::unwrap(&wrapped, &tenant_key(), "acme", "subj-1"),
        ] {
            let error = result.unwrap_err();
            assert!(matches!(error, KeyWrapError::SubjectKeyRejected { .. }));
            assert!(!error.to_string().contains("subj-"), "{error}");
        }
    }

    #[test]
    fn master_key_rotation_keeps_data_sealed_before_it_readable() {
        let (old, new) = (master_key(), master_key());
        let tenant = tenant_key();
        let wrapped_tenant = tenant.wrap(&old, "acme").unwrap();
        let wrapped_subject = subject_key_for(&tenant, "subj-1");
        let subject = SubjectKey::unwrap(&wrapped_subject, &tenant, "acme", "subj-1").unwrap();
        let sealed = envelope::seal(&subject, &RECORD, b"alice@example.com").unwrap();
        let hash_before = IdentityHasher::new(&tenant).hash("email", "alice@example.com");
        drop((tenant, subject));

        let rewrapped = wrapped_tenant.rewrap(&old, &new, "acme").unwrap();
        assert_eq!(rewrapped.master_key_id, new.id());
        drop(old);

        let tenant = TenantKey::unwrap(&rewrapped, &new, "acme").unwrap();
        let subject = SubjectKey::unwrap(&wrapped_subject, &tenant, "acme", "subj-1").unwrap();
        assert_eq!(
            envelope::open(&subject, &RECORD, &sealed).unwrap(),
            b"alice@example.com"
        );
        assert_eq!(
            IdentityHasher::new(&tenant).hash("email", "alice@example.com"),
            hash_before
        );
    }

    fn subject_key_for(tenant: &TenantKey, subject: &str) -> WrappedSubjectKey {
        subject_key().wrap(tenant, "acme", subject).unwrap()
    }

    #[test]
    fn rewrapping_with_the_wrong_old_master_key_fails_and_changes_nothing() {
        let (old, new) = (master_key(), master_key());
        let wrapped = tenant_key().wrap(&old, "acme").unwrap();
        let before = wrapped.clone();
        assert!(matches!(
            wrapped.rewrap(&new, &new, "acme"),
            Err(KeyWrapError::WrongMasterKey { .. })
        ));
        assert_eq!(wrapped, before);
    }

    #[test]
    fn master_key_ids_are_16_hex_digits_and_differ_between_keys() {
        let (a, b) = (master_key(), master_key());
        assert_eq!(a.id().len(), 16);
        assert!(a.id().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn a_master_key_parsed_from_hex_has_a_stable_id() {
        let text = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let a = MasterKey::from_hex(text).unwrap();
        let b = MasterKey::from_hex(&format!("{text}\n")).unwrap();
        let c = MasterKey::from_hex(&format!("{}\r\n", text.to_uppercase())).unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id(), c.id());
    }

    #[test]
    fn malformed_master_key_text_is_refused() {
        let good = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        for (text, short) in [
            ("", true),
            (&good[..62], true),
            (&format!("{good}00"), true),
            (&format!("{good}\n\n"), false),
            (&format!(" {good}"), false),
            (&format!("0x{}", &good[2..]), false),
            (&format!("{}zz", &good[2..]), false),
        ] {
            let error = MasterKey::from_hex(text).unwrap_err();
            if short {
                assert!(
                    matches!(error, MasterKeyError::WrongLength { .. }),
                    "{error}"
                );
            } else {
                assert!(matches!(error, MasterKeyError::NotHex { .. }), "{error}");
            }
        }
    }

    #[test]
    fn a_master_key_from_an_unset_environment_variable_names_the_variable() {
        let error = MasterKey::from_env("TESSERA_PRIVACY_TEST_NEVER_SET").unwrap_err();
        assert!(matches!(error, MasterKeyError::EnvMissing { .. }));
        assert!(error.to_string().contains("TESSERA_PRIVACY_TEST_NEVER_SET"));
    }

    #[test]
    fn a_master_key_from_an_environment_variable_holding_other_text_is_refused() {
        // Cargo sets this for test binaries; setting a variable needs `unsafe`.
        if std::env::var_os("CARGO_PKG_NAME").is_none() {
            return;
        }
        let error = MasterKey::from_env("CARGO_PKG_NAME").unwrap_err();
        assert!(matches!(error, MasterKeyError::NotHex { .. }));
        assert!(error.to_string().contains("CARGO_PKG_NAME"));
    }

    #[test]
    fn a_master_key_written_then_loaded_is_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let master = master_key();
        master.write_new(&path).unwrap();
        let loaded = MasterKey::from_file(&path).unwrap();
        assert_eq!(loaded.id(), master.id());
        let wrapped = tenant_key().wrap(&master, "acme").unwrap();
        assert!(TenantKey::unwrap(&wrapped, &loaded, "acme").is_ok());

        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65);
        assert!(text.ends_with('\n'));
        assert!(text[..64].bytes().all(|c| c.is_ascii_hexdigit()));
        // The directory holds the key file only: no temporary copy is left.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // The key's Debug shows its id and nothing of the key.
        let debug = format!("{master:?}");
        assert!(debug.contains(master.id()));
        assert!(!debug.contains(&text[..64]) && !debug.contains(&text[..8]));
    }

    #[cfg(unix)]
    #[test]
    fn write_new_creates_the_key_file_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        master_key().write_new(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn write_new_refuses_to_overwrite_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let first = master_key();
        first.write_new(&path).unwrap();
        let before = std::fs::read(&path).unwrap();

        let error = master_key().write_new(&path).unwrap_err();
        assert!(
            matches!(error, MasterKeyError::AlreadyExists { .. }),
            "{error}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(MasterKey::from_file(&path).unwrap().id(), first.id());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_new_into_a_missing_directory_fails_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("master.key");
        let error = master_key().write_new(&path).unwrap_err();
        assert!(matches!(error, MasterKeyError::Write { .. }));
        assert!(error.to_string().contains("master.key"));
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_readable_by_group_or_others_is_refused_with_a_chmod_hint() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        master_key().write_new(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = MasterKey::from_file(&path).unwrap_err();
            assert!(
                matches!(error, MasterKeyError::InsecurePermissions { mode: m, .. } if m == mode),
                "{error}"
            );
            assert!(error.to_string().contains("chmod 600"), "{error}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(MasterKey::from_file(&path).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_with_wrong_content_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        for content in [&b"not a key\n"[..], &[b'a'; 4096]] {
            std::fs::write(&path, content).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let error = MasterKey::from_file(&path).unwrap_err();
            assert!(
                matches!(
                    error,
                    MasterKeyError::NotHex { .. } | MasterKeyError::WrongLength { .. }
                ),
                "{error}"
            );
        }
    }

    #[test]
    fn a_missing_key_file_names_the_path() {
        let error = MasterKey::from_file("/nonexistent/tessera/master.key").unwrap_err();
        assert!(matches!(error, MasterKeyError::Read { .. }));
        assert!(
            error
                .to_string()
                .contains("/nonexistent/tessera/master.key")
        );
    }
}

mod identity_hash_tests {
    use super::*;

    #[test]
    fn identity_hashes_are_stable_within_a_tenant() {
        let master = master_key();
        let tenant = tenant_key();
        let first = IdentityHasher::new(&tenant).hash("email", "alice@example.com");
        let again = IdentityHasher::new(&tenant).hash("email", "alice@example.com");
        let wrapped = tenant.wrap(&master, "acme").unwrap();
        let reloaded = TenantKey::unwrap(&wrapped, &master, "acme").unwrap();
        let after_reload = IdentityHasher::new(&reloaded).hash("email", "alice@example.com");
        assert_eq!(first, again);
        assert_eq!(first, after_reload);
    }

    #[test]
    fn identity_hashes_differ_across_tenants() {
        let (acme, globex) = (tenant_key(), tenant_key());
        assert_ne!(
            IdentityHasher::new(&acme).hash("email", "alice@example.com"),
            IdentityHasher::new(&globex).hash("email", "alice@example.com")
        );
    }

    #[test]
    fn identity_hashes_differ_across_kinds_values_and_field_boundaries() {
        let hasher = IdentityHasher::new(&tenant_key());
        let hashes = [
            hasher.hash("email", "alice@example.com"),
            hasher.hash("email", "bob@example.com"),
            hasher.hash("member_id", "alice@example.com"),
            hasher.hash("emai", "lalice@example.com"),
            hasher.hash("", "emailalice@example.com"),
        ];
        for (i, a) in hashes.iter().enumerate() {
            for b in &hashes[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn debug_output_of_keys_and_hashers_shows_no_bytes() {
        let tenant = tenant_key();
        assert_eq!(format!("{tenant:?}"), "TenantKey { .. }");
        assert_eq!(format!("{:?}", subject_key()), "SubjectKey { .. }");
        assert_eq!(
            format!("{:?}", IdentityHasher::new(&tenant)),
            "IdentityHasher { .. }"
        );
    }
}
