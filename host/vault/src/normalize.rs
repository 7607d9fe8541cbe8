//! Identity normalisation.
//!
//! Tessera never stores an identity (an email address, a phone number, an
//! id) in the clear for lookup: it stores a keyed hash of the identity's
//! *canonical form*. Two spellings of the same identity must therefore
//! produce the same canonical form, or the same person becomes two subjects.
//! [`normalize`] computes that form. It is deterministic: it depends only on
//! the kind, the raw value and the tenant's [`NormalizeRules`], never on the
//! locale, the clock or any lookup table outside this file.
//!
//! A value that cannot be normalised is refused with a [`NormalizeError`].
//! Error messages name the identity kind and the rule that was broken; they
//! never contain the value itself (it is personal data), at most its length
//! in bytes or the class of an offending character.
//!
//! # Rules for every kind
//!
//! 1. Leading and trailing whitespace is removed. "Whitespace" is Unicode
//!    `White_Space` (Rust's [`str::trim`]): spaces, tabs, line breaks,
//!    no-break spaces and the other Unicode space characters.
//! 2. A value that is empty after step 1 is refused.
//! 3. A value longer than its limit after step 1 is refused: 254 bytes of
//!    UTF-8 for email addresses, 256 bytes for every other kind. For email
//!    addresses the limit is checked again on the canonical form, because
//!    lowercasing some non-ASCII letters lengthens them.
//! 4. A value containing a control character (Unicode category `Cc`, e.g. a
//!    tab or line break between other characters) is refused.
//! 5. A value containing one of these invisible formatting characters is
//!    refused, because it makes identical-looking values hash differently:
//!    U+00AD soft hyphen, U+061C Arabic letter mark, U+180E Mongolian vowel
//!    separator, U+200B zero-width space, U+200E and U+200F directional
//!    marks, U+202A to U+202E directional embeddings and overrides, U+2060
//!    to U+2064 word joiner and invisible operators, U+2066 to U+2069
//!    directional isolates, U+FEFF byte-order mark. (Zero-width joiner and
//!    non-joiner, U+200C and U+200D, are kept: some scripts and emoji need
//!    them.)
//! 6. Unicode normalisation (NFC) is *not* applied: a value written with
//!    combining characters and the same value written with precomposed
//!    characters produce different canonical forms. This only affects
//!    non-ASCII values.
//!
//! # Email addresses ([`IdentityKind::Email`])
//!
//! 1. The value must not contain whitespace anywhere.
//! 2. It must contain exactly one `@`. The part before it is the *local
//!    part*, the part after it the *domain*; both must be non-empty. (Quoted
//!    local parts containing `@` or spaces, allowed by RFC 5322 but almost
//!    never used, are therefore refused.)
//! 3. The local part is lowercased (Unicode lowercase). Tessera treats local
//!    parts case-insensitively, as nearly every mail provider does, even
//!    though RFC 5321 allows a provider to distinguish case. After
//!    lowercasing, the local part must be at most 64 bytes. It is not
//!    otherwise checked against the RFC 5322 grammar.
//! 4. The domain is lowercased (Unicode lowercase; for ASCII domains this is
//!    ASCII lowercase).
//! 5. A domain containing two consecutive dots is refused. Then a single
//!    trailing dot (the DNS root, as in `example.com.`) is removed.
//! 6. The domain must then contain at least one dot, must not start with a
//!    dot, and each dot-separated label may contain only ASCII letters,
//!    ASCII digits, hyphens and non-ASCII characters, and must not start or
//!    end with a hyphen. So addresses at a bare host name (`user@localhost`)
//!    or an address literal (`user@[192.0.2.1]`) are refused.
//! 7. Internationalised domains are kept in Unicode and are not converted to
//!    or from Punycode: `bücher.example` and `xn--bcher-kva.example` produce
//!    different canonical forms. Label lengths are not checked.
//! 8. Gmail: if [`NormalizeRules::canonical_gmail`] is true (the default) and
//!    the domain is `gmail.com` or `googlemail.com`, everything from the
//!    first `+` in the local part onwards is removed, then every `.` in the
//!    local part is removed, and the domain becomes `gmail.com`. Gmail
//!    delivers all of these spellings to the same mailbox. A local part left
//!    empty by this step is refused.
//! 9. For every other domain the local part is kept as lowercased, including
//!    dots and any `+tag`: other providers treat `+` and `.` as significant
//!    (or let users create addresses containing them), so removing them
//!    could merge two different people.
//! 10. The canonical form is `local@domain`; it must be at most 254 bytes.
//!
//! # Phone numbers ([`IdentityKind::Phone`])
//!
//! The canonical form is E.164: `+` followed by the country calling code and
//! the national number, digits only, for example `+8613800138000`.
//!
//! 1. An extension is refused, not stripped: a value containing the letter
//!    `x` or `X` (which also catches `ext`, `Ext.`, `extension`), `#`, `,` or
//!    `;` is refused with an error naming the extension.
//! 2. Digits must be ASCII `0`-`9`. Any other letter, any non-ASCII digit
//!    (such as full-width digits) and any symbol other than the separators
//!    below is refused.
//! 3. Separators are ignored wherever they appear: space (any Unicode
//!    whitespace that is not a control character; a tab or line break
//!    between digits is refused by the rules for every kind), `-`, `.`,
//!    `(`, `)` and `/`.
//! 4. A number is *international* if it has a `+` before its first digit
//!    (only one `+`, and only there; separators before it, as in
//!    `(+86) 138…`, are fine), or if its digits start with `00`, the
//!    international prefix used by most countries, which is then removed.
//!    The North American international prefix `011` is *not* recognised.
//!    In an international number the digits after the prefix are the country
//!    code followed by the national number, kept as written, except that a
//!    literal `(0)`, the notation for a trunk prefix that is not dialled
//!    from abroad (`+44 (0)20 7946 0958`), is removed. The first digit after
//!    the prefix (the first digit of the country code) must be 1-9.
//! 5. Any other number is *national* (in it, a `(0)` is simply the digit
//!    `0`). It is refused if [`NormalizeRules::default_country_code`] is
//!    `None`; otherwise that code (which must be between 1 and 999) is
//!    prepended, after the national trunk prefix is handled:
//!    - country code 1 (the North American Numbering Plan) has no trunk `0`:
//!      a national number starting with `0` is refused (no NANP number
//!      starts with `0`, so this also refuses numbers dialled with `011`),
//!      and an 11-digit national number starting with `1`, the NANP trunk
//!      prefix (`1 415 555 2671`), loses that `1`;
//!    - country codes 39 (Italy) and 378 (San Marino) have no trunk prefix:
//!      their leading `0` is part of the number and is kept;
//!    - for every other country code, one leading `0` (the trunk prefix used
//!      in China, the UK, Germany, France and many others) is removed.
//! 6. The result must have 8 to 15 digits including the country code. 15 is
//!    the E.164 maximum. E.164 sets no minimum; 8 was chosen to refuse
//!    fragments (short codes, local numbers without an area code) while
//!    accepting the shortest numbers of nearly every country. A few small
//!    numbering plans with very short subscriber numbers (four-digit numbers
//!    in some Pacific territories) cannot be stored.
//! 7. Limits: country codes are not checked against the list of assigned
//!    codes, national numbers are not checked against national numbering
//!    plans, and trunk prefixes other than `0` (and NANP's `1`), such as the
//!    `8` still used in some former Soviet states, are not removed. A number
//!    written internationally with its trunk `0` (`+44 020 7946 0958`) keeps
//!    that `0` and so does not match the correctly written number.
//!
//! # Member ids ([`IdentityKind::MemberId`])
//!
//! The trimmed value, with case preserved; a value containing whitespace
//! between other characters is refused. Member ids come from the tenant's own
//! systems, where case may be significant.
//!
//! # Device ids ([`IdentityKind::DeviceId`])
//!
//! The trimmed value. If it is a UUID written as 8-4-4-4-12 hexadecimal
//! digits separated by hyphens (the form of Apple's IDFA and Google's
//! advertising id), it is lowercased, so that the same id written in upper or
//! lower case matches; the all-zero UUID is refused, because it is the
//! placeholder platforms report when ad tracking is off and would merge every
//! such user into one subject. Any other device id, including UUIDs in other
//! notations (braces, no hyphens), is kept exactly as written.
//!
//! # External ids ([`IdentityKind::External`])
//!
//! The namespace (such as `shopify`) must be 1 to 64 characters, each one of
//! `a`-`z`, `0`-`9`, `_` or `-`; uppercase is refused, not lowercased. The
//! value is the trimmed value with case preserved.

use serde::{Deserialize, Serialize};

/// Maximum length of an email address, in bytes (RFC 5321 path limit).
const EMAIL_MAX_BYTES: usize = 254;
/// Maximum length of an email local part, in bytes (RFC 5321).
const EMAIL_LOCAL_MAX_BYTES: usize = 64;
/// Maximum length of any other identity value, in bytes.
const ID_MAX_BYTES: usize = 256;
/// Maximum length of an external namespace, in characters.
const NAMESPACE_MAX_CHARS: usize = 64;
/// Fewest digits, country code included, of an accepted phone number.
const PHONE_MIN_DIGITS: usize = 8;
/// Most digits, country code included, of a phone number (E.164).
const PHONE_MAX_DIGITS: usize = 15;

/// The kinds of identity Tessera resolves on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// A member (loyalty, account) id from the tenant's own systems.
    MemberId,
    /// A device or advertising id.
    DeviceId,
    /// An id in an external system; the string is the namespace, e.g. "shopify".
    External(String),
}

impl IdentityKind {
    /// Stable label used in hashes: `"email"`, `"phone"`, `"member_id"`,
    /// `"device_id"`, `"external:<namespace>"`.
    pub fn label(&self) -> String {
        match self {
            Self::Email => "email".to_owned(),
            Self::Phone => "phone".to_owned(),
            Self::MemberId => "member_id".to_owned(),
            Self::DeviceId => "device_id".to_owned(),
            Self::External(namespace) => format!("external:{namespace}"),
        }
    }

    /// Parses a label back (inverse of [`label`](Self::label)); labels are
    /// case-sensitive, and an external namespace must be valid.
    pub fn parse(label: &str) -> Result<Self, NormalizeError> {
        match label {
            "email" => Ok(Self::Email),
            "phone" => Ok(Self::Phone),
            "member_id" => Ok(Self::MemberId),
            "device_id" => Ok(Self::DeviceId),
            _ => match label.strip_prefix("external:") {
                Some(namespace) => {
                    check_namespace(namespace)?;
                    Ok(Self::External(namespace.to_owned()))
                }
                None => Err(NormalizeError::UnknownKind { len: label.len() }),
            },
        }
    }
}

/// Per-tenant normalisation settings.
///
/// Fields missing when deserialising take their [`Default`] values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct NormalizeRules {
    /// Country calling code assumed for phone numbers written without one,
    /// e.g. 86 (China) or 1; None = such numbers are refused.
    pub default_country_code: Option<u16>,
    /// Whether gmail.com/googlemail.com addresses drop dots and a "+tag" in
    /// the local part. Default true.
    pub canonical_gmail: bool,
}

impl Default for NormalizeRules {
    fn default() -> Self {
        Self {
            default_country_code: None,
            canonical_gmail: true,
        }
    }
}

/// Why an identity value was refused.
///
/// Each message names the kind and the rule broken. No message contains the
/// value: at most its length in bytes or the class of an offending character.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NormalizeError {
    /// A kind label that [`IdentityKind::parse`] does not know.
    #[error(
        "unknown identity kind label ({len} bytes): expected \"email\", \"phone\", \"member_id\", \"device_id\" or \"external:<namespace>\""
    )]
    UnknownKind {
        /// Length of the label, in bytes.
        len: usize,
    },
    /// An external namespace that is not 1 to 64 characters of a-z, 0-9, '_' or '-'.
    #[error(
        "external identity namespace {problem}: it must be 1 to 64 characters, each a-z, 0-9, '_' or '-'"
    )]
    InvalidNamespace {
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The value is empty once surrounding whitespace is removed.
    #[error("{kind}: the value is empty or only whitespace")]
    Empty {
        /// Label of the identity kind.
        kind: String,
    },
    /// The value is longer than the kind allows.
    #[error("{kind}: the value is {len} bytes long, over the limit of {max} bytes")]
    TooLong {
        /// Label of the identity kind.
        kind: String,
        /// Length of the value, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// The value contains a character the kind does not allow.
    #[error("{kind}: the value contains a {class}, which is not allowed")]
    InvalidCharacter {
        /// Label of the identity kind.
        kind: String,
        /// Class of the offending character, e.g. "control character".
        class: &'static str,
    },
    /// An email address without exactly one '@'.
    #[error("email: an address must contain exactly one '@', this one has {count}")]
    EmailAtSign {
        /// How many '@' the value has.
        count: usize,
    },
    /// An email address whose local part is empty, or empty once canonicalised.
    #[error("email: the local part (before '@') is empty, or empty once canonicalised")]
    EmailLocalPartEmpty,
    /// An email address whose local part is over 64 bytes.
    #[error("email: the local part (before '@') is {len} bytes long, over the limit of 64 bytes")]
    EmailLocalPartTooLong {
        /// Length of the lowercased local part, in bytes.
        len: usize,
    },
    /// An email address whose domain breaks a rule.
    #[error("email: the domain (after '@') {problem}")]
    EmailDomain {
        /// Which rule the domain breaks.
        problem: &'static str,
    },
    /// A phone number with an extension.
    #[error(
        "phone: extensions are not supported (found an extension marker: 'x', 'ext', '#', ',' or ';'); store the number without its extension"
    )]
    PhoneExtension,
    /// A phone number with '+' after its first digit, or more than once.
    #[error("phone: '+' is only allowed once, before the first digit")]
    PhonePlusPosition,
    /// A national phone number while the rules have no default country code.
    #[error(
        "phone: the number has no country code ('+' or '00') and no default country code is configured"
    )]
    PhoneNoCountryCode,
    /// A default country code outside 1..=999.
    #[error("phone: the configured default country code {code} is invalid: it must be 1 to 999")]
    PhoneDefaultCountryCode {
        /// The configured code.
        code: u16,
    },
    /// An international phone number whose country code starts with 0.
    #[error("phone: the country code (after '+' or '00') must start with a digit 1-9")]
    PhoneCountryCode,
    /// A NANP (country code 1) national number starting with 0.
    #[error(
        "phone: a national number in country code 1 (NANP) cannot start with 0; the '011' international prefix is not supported, write '+' instead"
    )]
    PhoneNanpLeadingZero,
    /// A phone number outside 8..=15 digits, country code included.
    #[error(
        "phone: the number has {digits} digits including the country code; between 8 and 15 are required"
    )]
    PhoneDigitCount {
        /// How many digits the canonical number would have.
        digits: usize,
    },
    /// The all-zero UUID given as a device id.
    #[error(
        "device_id: the all-zero UUID is the placeholder sent when ad tracking is off, not a device id"
    )]
    DeviceIdNilUuid,
}

/// Returns the canonical form that is hashed.
///
/// The rules are those of the [module documentation](self). The result is
/// itself a valid input that normalises to itself.
pub fn normalize(
    kind: &IdentityKind,
    raw: &str,
    rules: &NormalizeRules,
) -> Result<String, NormalizeError> {
    match kind {
        IdentityKind::Email => normalize_email(raw, rules),
        IdentityKind::Phone => normalize_phone(raw, rules),
        IdentityKind::MemberId => normalize_member_id(raw),
        IdentityKind::DeviceId => normalize_device_id(raw),
        IdentityKind::External(namespace) => {
            check_namespace(namespace)?;
            Ok(prepare(kind, raw, ID_MAX_BYTES)?.to_owned())
        }
    }
}

/// Applies the rules for every kind: trims, then refuses an empty value, an
/// over-long value, control characters and invisible formatting characters.
fn prepare<'a>(kind: &IdentityKind, raw: &'a str, max: usize) -> Result<&'a str, NormalizeError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(NormalizeError::Empty { kind: kind.label() });
    }
    if value.len() > max {
        return Err(NormalizeError::TooLong {
            kind: kind.label(),
            len: value.len(),
            max,
        });
    }
    for c in value.chars() {
        let class = if c.is_control() {
            "control character"
        } else if is_invisible_format(c) {
            "invisible formatting character"
        } else {
            continue;
        };
        return Err(NormalizeError::InvalidCharacter {
            kind: kind.label(),
            class,
        });
    }
    Ok(value)
}

/// The invisible formatting characters refused in every kind (rule 5).
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

fn check_namespace(namespace: &str) -> Result<(), NormalizeError> {
    let problem = if namespace.is_empty() {
        "is empty"
    } else if namespace.len() > NAMESPACE_MAX_CHARS {
        "is too long"
    } else if !namespace
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
    {
        "contains a character that is not allowed"
    } else {
        return Ok(());
    };
    Err(NormalizeError::InvalidNamespace { problem })
}

fn normalize_email(raw: &str, rules: &NormalizeRules) -> Result<String, NormalizeError> {
    let kind = IdentityKind::Email;
    let value = prepare(&kind, raw, EMAIL_MAX_BYTES)?;
    if value.chars().any(char::is_whitespace) {
        return Err(NormalizeError::InvalidCharacter {
            kind: kind.label(),
            class: "whitespace character",
        });
    }
    let count = value.matches('@').count();
    let Some((local, domain)) = value.split_once('@').filter(|_| count == 1) else {
        return Err(NormalizeError::EmailAtSign { count });
    };
    if local.is_empty() {
        return Err(NormalizeError::EmailLocalPartEmpty);
    }
    let local = local.to_lowercase();
    if local.len() > EMAIL_LOCAL_MAX_BYTES {
        return Err(NormalizeError::EmailLocalPartTooLong { len: local.len() });
    }
    let domain = domain.to_lowercase();
    if domain.contains("..") {
        return Err(NormalizeError::EmailDomain {
            problem: "contains consecutive dots",
        });
    }
    let domain = domain.strip_suffix('.').unwrap_or(&domain);
    check_domain(domain)?;

    let (local, domain) =
        if rules.canonical_gmail && (domain == "gmail.com" || domain == "googlemail.com") {
            let untagged = local.split_once('+').map_or(local.as_str(), |(l, _)| l);
            let local: String = untagged.chars().filter(|&c| c != '.').collect();
            if local.is_empty() {
                return Err(NormalizeError::EmailLocalPartEmpty);
            }
            (local, "gmail.com")
        } else {
            (local, domain)
        };

    let canonical = format!("{local}@{domain}");
    if canonical.len() > EMAIL_MAX_BYTES {
        return Err(NormalizeError::TooLong {
            kind: kind.label(),
            len: canonical.len(),
            max: EMAIL_MAX_BYTES,
        });
    }
    Ok(canonical)
}

/// Checks a lowercased domain without its trailing dot (email rule 6).
fn check_domain(domain: &str) -> Result<(), NormalizeError> {
    let problem = if domain.is_empty() {
        "is empty"
    } else if domain.starts_with('.') {
        "starts with a dot"
    } else if !domain.contains('.') {
        "has no dot"
    } else if !domain
        .chars()
        .all(|c| c == '.' || c == '-' || c.is_ascii_alphanumeric() || !c.is_ascii())
    {
        "contains a character other than letters, digits, hyphens, dots and non-ASCII characters"
    } else if domain
        .split('.')
        .any(|label| label.starts_with('-') || label.ends_with('-'))
    {
        "has a label that starts or ends with a hyphen"
    } else {
        return Ok(());
    };
    Err(NormalizeError::EmailDomain { problem })
}

fn normalize_phone(raw: &str, rules: &NormalizeRules) -> Result<String, NormalizeError> {
    let kind = IdentityKind::Phone;
    let value = prepare(&kind, raw, ID_MAX_BYTES)?;
    if value.contains(['x', 'X', '#', ',', ';']) {
        return Err(NormalizeError::PhoneExtension);
    }

    // Each digit, and whether it was written as the "(0)" of a trunk prefix.
    let mut digits: Vec<(char, bool)> = Vec::new();
    let mut plus = false;
    let mut rest = value;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("(0)") {
            digits.push(('0', true));
            rest = after;
            continue;
        }
        match c {
            '0'..='9' => digits.push((c, false)),
            '+' if !plus && digits.is_empty() => plus = true,
            '+' => return Err(NormalizeError::PhonePlusPosition),
            '-' | '.' | '(' | ')' | '/' => {}
            c if c.is_whitespace() => {}
            c => {
                let class = if c.is_alphabetic() {
                    "letter"
                } else if c.is_numeric() {
                    "digit other than ASCII 0-9"
                } else {
                    "symbol other than the separators space, '-', '.', '(', ')' and '/'"
                };
                return Err(NormalizeError::InvalidCharacter {
                    kind: kind.label(),
                    class,
                });
            }
        }
        rest = &rest[c.len_utf8()..];
    }
    if digits.is_empty() {
        return Err(NormalizeError::PhoneDigitCount { digits: 0 });
    }

    let prefix_len = if plus {
        Some(0)
    } else if digits.len() >= 2 && digits[0].0 == '0' && digits[1].0 == '0' {
        Some(2)
    } else {
        None
    };
    let number: String = match prefix_len {
        Some(skip) => {
            let number: String = digits[skip..]
                .iter()
                .filter(|(_, trunk)| !trunk)
                .map(|(d, _)| d)
                .collect();
            if number.starts_with('0') {
                return Err(NormalizeError::PhoneCountryCode);
            }
            number
        }
        None => {
            let code = rules
                .default_country_code
                .ok_or(NormalizeError::PhoneNoCountryCode)?;
            if !(1..=999).contains(&code) {
                return Err(NormalizeError::PhoneDefaultCountryCode { code });
            }
            let national: String = digits.iter().map(|(d, _)| d).collect();
            let national: &str = match code {
                1 if national.starts_with('0') => {
                    return Err(NormalizeError::PhoneNanpLeadingZero);
                }
                1 if national.len() == 11 => national.strip_prefix('1').unwrap_or(&national),
                1 | 39 | 378 => &national,
                _ => national.strip_prefix('0').unwrap_or(&national),
            };
            format!("{code}{national}")
        }
    };
    if !(PHONE_MIN_DIGITS..=PHONE_MAX_DIGITS).contains(&number.len()) {
        return Err(NormalizeError::PhoneDigitCount {
            digits: number.len(),
        });
    }
    Ok(format!("+{number}"))
}

fn normalize_member_id(raw: &str) -> Result<String, NormalizeError> {
    let kind = IdentityKind::MemberId;
    let value = prepare(&kind, raw, ID_MAX_BYTES)?;
    if value.chars().any(char::is_whitespace) {
        return Err(NormalizeError::InvalidCharacter {
            kind: kind.label(),
            class: "whitespace character",
        });
    }
    Ok(value.to_owned())
}

fn normalize_device_id(raw: &str) -> Result<String, NormalizeError> {
    let value = prepare(&IdentityKind::DeviceId, raw, ID_MAX_BYTES)?;
    if !is_hyphenated_uuid(value) {
        return Ok(value.to_owned());
    }
    if value.bytes().all(|b| b == b'0' || b == b'-') {
        return Err(NormalizeError::DeviceIdNilUuid);
    }
    Ok(value.to_ascii_lowercase())
}

/// Whether `value` is 8-4-4-4-12 hexadecimal digits separated by hyphens.
fn is_hyphenated_uuid(value: &str) -> bool {
    value.len() == 36
        && value.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rules(default_country_code: Option<u16>, canonical_gmail: bool) -> NormalizeRules {
        NormalizeRules {
            default_country_code,
            canonical_gmail,
        }
    }

    fn ext(namespace: &str) -> IdentityKind {
        IdentityKind::External(namespace.to_owned())
    }

    /// Valid emails: (raw, canonical_gmail, expected).
    const EMAILS: &[(&str, bool, &str)] = &[
        ("alice@example.com", true, "alice@example.com"),
        ("  Alice@Example.COM \n", true, "alice@example.com"),
        (
            "ALICE.SMITH@EXAMPLE.CO.UK",
            true,
            "alice.smith@example.co.uk",
        ),
        ("alice+news@example.com", true, "alice+news@example.com"),
        ("a.l.i.c.e@example.com", true, "a.l.i.c.e@example.com"),
        ("alice@example.com.", true, "alice@example.com"),
        (
            "alice@sub-domain.example.com",
            true,
            "alice@sub-domain.example.com",
        ),
        ("Alice.Smith+promo@Gmail.com", true, "alicesmith@gmail.com"),
        ("a.l.i.c.e@gmail.com", true, "alice@gmail.com"),
        ("alice+a+b@gmail.com", true, "alice@gmail.com"),
        ("alice.s+x@googlemail.com", true, "alices@gmail.com"),
        ("Alice@GoogleMail.com.", true, "alice@gmail.com"),
        ("alice.s+x@gmail.com", false, "alice.s+x@gmail.com"),
        ("alice@googlemail.com", false, "alice@googlemail.com"),
        ("alice@BÜCHER.example", true, "alice@bücher.example"),
        ("ÄLICE@例え.テスト", true, "älice@例え.テスト"),
        (
            "user@xn--bcher-kva.example",
            true,
            "user@xn--bcher-kva.example",
        ),
        ("王伟@邮件.中国", true, "王伟@邮件.中国"),
        ("\u{3000}bob@example.org\u{00A0}", true, "bob@example.org"),
        ("o'brien_1-2@123.example", true, "o'brien_1-2@123.example"),
    ];

    /// Valid phone numbers: (raw, default country code, expected).
    const PHONES: &[(&str, Option<u16>, &str)] = &[
        // China.
        ("138 0013 8000", Some(86), "+8613800138000"),
        ("+86 138-0013-8000", None, "+8613800138000"),
        ("+86 138-0013-8000", Some(1), "+8613800138000"),
        ("0086 13800138000", None, "+8613800138000"),
        ("(+86) 138 0013 8000", None, "+8613800138000"),
        (
            "+86\u{00A0}138\u{3000}0013\u{2009}8000",
            None,
            "+8613800138000",
        ),
        ("13800138000", Some(86), "+8613800138000"),
        ("010 1234 5678", Some(86), "+861012345678"),
        ("+86 10 1234 5678", None, "+861012345678"),
        // UK, with trunk zero.
        ("020 7946 0958", Some(44), "+442079460958"),
        ("(0)20 7946 0958", Some(44), "+442079460958"),
        ("+44 20 7946 0958", None, "+442079460958"),
        ("+44 (0)20 7946 0958", None, "+442079460958"),
        ("0044 (0)20 7946 0958", None, "+442079460958"),
        ("07700 900123", Some(44), "+447700900123"),
        // Germany and France.
        ("030/12345678", Some(49), "+493012345678"),
        ("01.23.45.67.89", Some(33), "+33123456789"),
        // NANP.
        ("(415) 555-2671", Some(1), "+14155552671"),
        ("415.555.2671", Some(1), "+14155552671"),
        ("1 (415) 555-2671", Some(1), "+14155552671"),
        ("1-415-555-2671", Some(1), "+14155552671"),
        ("+1 415 555 2671", None, "+14155552671"),
        // Italy keeps its leading zero.
        ("06 1234 5678", Some(39), "+390612345678"),
        ("+39 06 1234 5678", None, "+390612345678"),
        // Length bounds; an international number ignores the default.
        ("+12345678", None, "+12345678"),
        ("+123456789012345", None, "+123456789012345"),
        ("+8613800138000", Some(44), "+8613800138000"),
    ];

    /// Valid member ids: (raw, expected).
    const MEMBER_IDS: &[(&str, &str)] = &[
        ("  M-000123 ", "M-000123"),
        ("AbC123", "AbC123"),
        ("会员-42", "会员-42"),
    ];

    /// Valid device ids: (raw, expected).
    const DEVICE_IDS: &[(&str, &str)] = &[
        (
            "6D92078A-8246-4BA4-AE5B-76104861E7DC",
            "6d92078a-8246-4ba4-ae5b-76104861e7dc",
        ),
        (
            " 38400000-8cf0-11bd-b23e-10b96e40000d\t",
            "38400000-8cf0-11bd-b23e-10b96e40000d",
        ),
        (
            "{6D92078A-8246-4BA4-AE5B-76104861E7DC}",
            "{6D92078A-8246-4BA4-AE5B-76104861E7DC}",
        ),
        (
            "6D92078A82464BA4AE5B76104861E7DC",
            "6D92078A82464BA4AE5B76104861E7DC",
        ),
        ("Android-ID 9774D56D682E549C", "Android-ID 9774D56D682E549C"),
    ];

    /// Valid external ids: (namespace, raw, expected).
    const EXTERNALS: &[(&str, &str, &str)] = &[
        ("shopify", "  Cust_00042 ", "Cust_00042"),
        ("crm-2_x", "Order 17", "Order 17"),
        ("a", "X", "X"),
    ];

    /// Every valid case: (kind, raw, rules, expected).
    fn valid_cases() -> Vec<(IdentityKind, &'static str, NormalizeRules, &'static str)> {
        let plain = NormalizeRules::default();
        let mut cases = Vec::new();
        for &(raw, gmail, expected) in EMAILS {
            cases.push((IdentityKind::Email, raw, rules(None, gmail), expected));
        }
        for &(raw, code, expected) in PHONES {
            cases.push((IdentityKind::Phone, raw, rules(code, true), expected));
        }
        for &(raw, expected) in MEMBER_IDS {
            cases.push((IdentityKind::MemberId, raw, plain.clone(), expected));
        }
        for &(raw, expected) in DEVICE_IDS {
            cases.push((IdentityKind::DeviceId, raw, plain.clone(), expected));
        }
        for &(namespace, raw, expected) in EXTERNALS {
            cases.push((ext(namespace), raw, plain.clone(), expected));
        }
        cases
    }

    #[test]
    fn valid_inputs_normalise_as_expected() {
        for (kind, raw, rules, expected) in valid_cases() {
            let got = normalize(&kind, raw, &rules);
            assert_eq!(got.as_deref(), Ok(expected), "{kind:?} {raw:?}");
        }
    }

    #[test]
    fn normalisation_is_idempotent_over_the_table() {
        for (kind, raw, rules, _) in valid_cases() {
            let once = normalize(&kind, raw, &rules).unwrap();
            assert_eq!(
                normalize(&kind, &once, &rules),
                Ok(once.clone()),
                "{kind:?} {raw:?}"
            );
            // The canonical form needs no default country code.
            if kind == IdentityKind::Phone {
                let bare = NormalizeRules::default();
                assert_eq!(normalize(&kind, &once, &bare), Ok(once.clone()));
            }
        }
    }

    fn invalid(kind: &str) -> impl Fn(&'static str) -> NormalizeError {
        let kind = kind.to_owned();
        move |class| NormalizeError::InvalidCharacter {
            kind: kind.clone(),
            class,
        }
    }

    #[test]
    fn invalid_emails_are_refused() {
        use NormalizeError::*;
        let char_err = invalid("email");
        let domain = |problem| EmailDomain { problem };
        let long_local = format!("{}@example.com", "a".repeat(65));
        let max_local = format!("{}@example.com", "a".repeat(64));
        let long_address = format!("a@{}.com", "b".repeat(249));
        // Lowercasing 'İ' (2 bytes) gives "i\u{307}" (3 bytes): the address
        // fits the limit as written (252 bytes) but not once lowercased.
        let growing = format!("a@{}.com", "İ".repeat(123));
        let cases: Vec<(&str, NormalizeError)> = vec![
            (
                "",
                Empty {
                    kind: "email".into(),
                },
            ),
            (
                " \t\n ",
                Empty {
                    kind: "email".into(),
                },
            ),
            ("alice.example.com", EmailAtSign { count: 0 }),
            ("alice@bob@example.com", EmailAtSign { count: 2 }),
            ("@example.com", EmailLocalPartEmpty),
            ("alice@", domain("is empty")),
            ("alice@.", domain("is empty")),
            ("alice@localhost", domain("has no dot")),
            ("alice@b..com", domain("contains consecutive dots")),
            ("a@b..com", domain("contains consecutive dots")),
            ("alice@example.com..", domain("contains consecutive dots")),
            ("alice@.example.com", domain("starts with a dot")),
            (
                "alice@exa_mple.com",
                domain(
                    "contains a character other than letters, digits, hyphens, dots and non-ASCII characters",
                ),
            ),
            (
                "alice@[192.0.2.1]",
                domain(
                    "contains a character other than letters, digits, hyphens, dots and non-ASCII characters",
                ),
            ),
            (
                "alice@-example.com",
                domain("has a label that starts or ends with a hyphen"),
            ),
            (
                "alice@example-.com",
                domain("has a label that starts or ends with a hyphen"),
            ),
            ("alice smith@example.com", char_err("whitespace character")),
            (
                "alice@example.com\u{00A0}x",
                char_err("whitespace character"),
            ),
            ("ali\u{0}ce@example.com", char_err("control character")),
            (
                "alice\u{200B}@example.com",
                char_err("invisible formatting character"),
            ),
            (
                "\u{FEFF}alice@example.com",
                char_err("invisible formatting character"),
            ),
            ("+news@gmail.com", EmailLocalPartEmpty),
            ("...@googlemail.com", EmailLocalPartEmpty),
            (long_local.as_str(), EmailLocalPartTooLong { len: 65 }),
            (
                long_address.as_str(),
                TooLong {
                    kind: "email".into(),
                    len: 255,
                    max: 254,
                },
            ),
            (
                growing.as_str(),
                TooLong {
                    kind: "email".into(),
                    len: 2 + 3 * 123 + 4,
                    max: 254,
                },
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                normalize(&IdentityKind::Email, raw, &NormalizeRules::default()),
                Err(expected),
                "{raw:?}"
            );
        }
        // At the limits.
        assert!(normalize(&IdentityKind::Email, &max_local, &NormalizeRules::default()).is_ok());
        let max_address = format!("a@{}.com", "b".repeat(248));
        assert_eq!(max_address.len(), 254);
        assert!(
            normalize(
                &IdentityKind::Email,
                &max_address,
                &NormalizeRules::default()
            )
            .is_ok()
        );
        // "+tag" on other domains is kept even with canonical_gmail.
        assert_eq!(
            normalize(
                &IdentityKind::Email,
                "+news@example.com",
                &NormalizeRules::default()
            ),
            Ok("+news@example.com".to_owned())
        );
    }

    #[test]
    fn invalid_phones_are_refused() {
        use NormalizeError::*;
        let char_err = invalid("phone");
        let cases: Vec<(&str, Option<u16>, NormalizeError)> = vec![
            (
                "",
                Some(86),
                Empty {
                    kind: "phone".into(),
                },
            ),
            ("138 0013 8000", None, PhoneNoCountryCode),
            ("1380013800", Some(0), PhoneDefaultCountryCode { code: 0 }),
            (
                "1380013800",
                Some(1000),
                PhoneDefaultCountryCode { code: 1000 },
            ),
            // Too short and too long.
            ("+1234567", None, PhoneDigitCount { digits: 7 }),
            ("+86 138", None, PhoneDigitCount { digits: 5 }),
            ("12345", Some(86), PhoneDigitCount { digits: 7 }),
            ("+1234567890123456", None, PhoneDigitCount { digits: 16 }),
            (
                "138 0013 8000 1234",
                Some(86),
                PhoneDigitCount { digits: 17 },
            ),
            ("+", None, PhoneDigitCount { digits: 0 }),
            ("()-./", Some(86), PhoneDigitCount { digits: 0 }),
            ("00", None, PhoneDigitCount { digits: 0 }),
            // Extensions.
            ("+1 415 555 2671 ext 12", None, PhoneExtension),
            ("+1 415 555 2671 Ext. 12", None, PhoneExtension),
            ("+1 415 555 2671 x12", None, PhoneExtension),
            ("+1 415 555 2671 X 12", None, PhoneExtension),
            ("+1 415 555 2671#12", None, PhoneExtension),
            ("+1 415 555 2671,12", None, PhoneExtension),
            ("+1-415-555-2671;ext=12", None, PhoneExtension),
            // Letters and other characters.
            ("1-800-FLOWERS", Some(1), char_err("letter")),
            ("tel:+14155552671", None, char_err("letter")),
            ("138 0013 800O", Some(86), char_err("letter")),
            (
                "１３８００１３８０００",
                Some(86),
                char_err("digit other than ASCII 0-9"),
            ),
            (
                "+86_13800138000",
                None,
                char_err("symbol other than the separators space, '-', '.', '(', ')' and '/'"),
            ),
            ("+86 138\t0013 8000", None, char_err("control character")),
            (
                "+86 138\u{200E}00138000",
                None,
                char_err("invisible formatting character"),
            ),
            // '+' placement and country codes.
            ("86+13800138000", None, PhonePlusPosition),
            ("++8613800138000", None, PhonePlusPosition),
            ("+0 86 13800138000", None, PhoneCountryCode),
            ("000 86 13800138000", None, PhoneCountryCode),
            ("011 44 20 7946 0958", Some(1), PhoneNanpLeadingZero),
            ("0415 555 2671", Some(1), PhoneNanpLeadingZero),
        ];
        for (raw, code, expected) in cases {
            assert_eq!(
                normalize(&IdentityKind::Phone, raw, &rules(code, true)),
                Err(expected),
                "{raw:?} with {code:?}"
            );
        }
    }

    #[test]
    fn trunk_prefix_is_dropped_only_nationally() {
        let cn = rules(Some(86), true);
        // A second leading zero makes "00", the international prefix.
        assert_eq!(
            normalize(&IdentityKind::Phone, "0 010 1234 5678", &cn),
            Ok("+1012345678".to_owned())
        );
        let uk = rules(Some(44), true);
        // Written with a country code, a trunk zero is kept (documented limit).
        assert_eq!(
            normalize(&IdentityKind::Phone, "+44 020 7946 0958", &uk),
            Ok("+4402079460958".to_owned())
        );
        // NANP: a 10-digit number starting with 1 is not trunk-stripped.
        assert_eq!(
            normalize(&IdentityKind::Phone, "1415555267", &rules(Some(1), true)),
            Ok("+11415555267".to_owned())
        );
        // San Marino keeps its zero.
        assert_eq!(
            normalize(&IdentityKind::Phone, "0549 123456", &rules(Some(378), true)),
            Ok("+3780549123456".to_owned())
        );
    }

    #[test]
    fn ids_and_external_values() {
        use NormalizeError::*;
        let member =
            |raw: &str| normalize(&IdentityKind::MemberId, raw, &NormalizeRules::default());
        let device =
            |raw: &str| normalize(&IdentityKind::DeviceId, raw, &NormalizeRules::default());
        let shop = |raw: &str| normalize(&ext("shopify"), raw, &NormalizeRules::default());

        assert_eq!(
            member("  "),
            Err(Empty {
                kind: "member_id".into()
            })
        );
        assert_eq!(
            member("M 123"),
            Err(invalid("member_id")("whitespace character"))
        );
        assert_eq!(
            member("M\u{3000}123"),
            Err(invalid("member_id")("whitespace character"))
        );
        assert_eq!(
            member("M\u{7}123"),
            Err(invalid("member_id")("control character"))
        );
        assert_eq!(member(&"m".repeat(256)), Ok("m".repeat(256)));
        assert_eq!(
            member(&"m".repeat(257)),
            Err(TooLong {
                kind: "member_id".into(),
                len: 257,
                max: 256
            })
        );
        assert_ne!(member("abc"), member("ABC"));

        assert_eq!(
            device(""),
            Err(Empty {
                kind: "device_id".into()
            })
        );
        assert_eq!(
            device("00000000-0000-0000-0000-000000000000"),
            Err(DeviceIdNilUuid)
        );
        assert_eq!(
            device("6d92078a-8246-4ba4-ae5b-76104861e7dc"),
            device("6D92078A-8246-4BA4-AE5B-76104861E7DC")
        );
        // Not a UUID: wrong group lengths, non-hex digit.
        assert_eq!(
            device("6D92078A8-246-4BA4-AE5B-76104861E7DC"),
            Ok("6D92078A8-246-4BA4-AE5B-76104861E7DC".to_owned())
        );
        assert_eq!(
            device("6D92078G-8246-4BA4-AE5B-76104861E7DC"),
            Ok("6D92078G-8246-4BA4-AE5B-76104861E7DC".to_owned())
        );
        assert_eq!(
            device("dev\u{202E}ice"),
            Err(invalid("device_id")("invisible formatting character"))
        );

        assert_eq!(
            shop(" "),
            Err(Empty {
                kind: "external:shopify".into()
            })
        );
        assert_eq!(
            shop("a\nb"),
            Err(invalid("external:shopify")("control character"))
        );
        assert_eq!(
            shop(&"v".repeat(257)),
            Err(TooLong {
                kind: "external:shopify".into(),
                len: 257,
                max: 256
            })
        );
        assert_ne!(shop("abc"), shop("ABC"));

        for (namespace, problem) in [
            ("", "is empty"),
            ("Shopify", "contains a character that is not allowed"),
            ("shop ify", "contains a character that is not allowed"),
            ("shop:ify", "contains a character that is not allowed"),
            ("shöp", "contains a character that is not allowed"),
        ] {
            assert_eq!(
                normalize(&ext(namespace), "v", &NormalizeRules::default()),
                Err(InvalidNamespace { problem }),
                "{namespace:?}"
            );
        }
        let long = "n".repeat(65);
        assert_eq!(
            normalize(&ext(&long), "v", &NormalizeRules::default()),
            Err(InvalidNamespace {
                problem: "is too long"
            })
        );
        assert!(normalize(&ext(&"n".repeat(64)), "v", &NormalizeRules::default()).is_ok());
    }

    #[test]
    fn labels_round_trip() {
        let kinds = [
            (IdentityKind::Email, "email"),
            (IdentityKind::Phone, "phone"),
            (IdentityKind::MemberId, "member_id"),
            (IdentityKind::DeviceId, "device_id"),
            (ext("shopify"), "external:shopify"),
            (ext("crm_2-x"), "external:crm_2-x"),
        ];
        for (kind, label) in kinds {
            assert_eq!(kind.label(), label);
            assert_eq!(IdentityKind::parse(label), Ok(kind));
        }
        for bad in ["", "Email", "mail", " email", "external", "member-id"] {
            assert_eq!(
                IdentityKind::parse(bad),
                Err(NormalizeError::UnknownKind { len: bad.len() }),
                "{bad:?}"
            );
        }
        assert_eq!(
            IdentityKind::parse("external:"),
            Err(NormalizeError::InvalidNamespace {
                problem: "is empty"
            })
        );
        assert!(matches!(
            IdentityKind::parse("external:Shopify"),
            Err(NormalizeError::InvalidNamespace { .. })
        ));
        assert!(matches!(
            IdentityKind::parse("external:a:b"),
            Err(NormalizeError::InvalidNamespace { .. })
        ));
    }

    #[test]
    fn serde_forms() {
        assert_eq!(
            serde_json::to_string(&IdentityKind::MemberId).unwrap(),
            "\"member_id\""
        );
        assert_eq!(
            serde_json::to_string(&ext("shopify")).unwrap(),
            r#"{"external":"shopify"}"#
        );
        let rules: NormalizeRules = serde_json::from_str(r#"{"default_country_code":86}"#).unwrap();
        assert_eq!(
            rules,
            NormalizeRules {
                default_country_code: Some(86),
                canonical_gmail: true
            }
        );
        let rules: NormalizeRules = serde_json::from_str("{}").unwrap();
        assert_eq!(rules, NormalizeRules::default());
        assert_eq!(NormalizeRules::default().default_country_code, None);
        assert!(NormalizeRules::default().canonical_gmail);
    }

    #[test]
    fn error_messages_do_not_echo_the_value() {
        // Each raw value contains the distinctive marker "qz7w" or "9753".
        let cases: Vec<(IdentityKind, String, Option<u16>)> = vec![
            (IdentityKind::Email, "qz7w.example.com".into(), None),
            (IdentityKind::Email, "qz7w@b@c.com".into(), None),
            (IdentityKind::Email, "qz7w@localhost".into(), None),
            (IdentityKind::Email, "qz7w@b..com".into(), None),
            (IdentityKind::Email, "qz7w@exa_mple.com".into(), None),
            (IdentityKind::Email, "qz7w smith@example.com".into(), None),
            (IdentityKind::Email, "qz7w\u{1}@example.com".into(), None),
            (
                IdentityKind::Email,
                format!("{}qz7w@example.com", "a".repeat(70)),
                None,
            ),
            (
                IdentityKind::Email,
                format!("qz7w@{}.com", "b".repeat(260)),
                None,
            ),
            (IdentityKind::Phone, "+1 415 9753 ext 12".into(), None),
            (IdentityKind::Phone, "9753 qz7w".into(), Some(1)),
            (IdentityKind::Phone, "0 9753 2671".into(), Some(1)),
            (IdentityKind::Phone, "415 9753".into(), None),
            (IdentityKind::Phone, "+9753".into(), None),
            (IdentityKind::Phone, "+97531234567890123".into(), None),
            (IdentityKind::Phone, "97+53123456".into(), None),
            (IdentityKind::MemberId, "qz7w 9753".into(), None),
            (IdentityKind::DeviceId, "qz7w\u{FEFF}9753".into(), None),
            (ext("shopify"), format!("qz7w{}", "v".repeat(300)), None),
        ];
        for (kind, raw, code) in cases {
            let err = normalize(&kind, &raw, &rules(code, true)).expect_err(&raw);
            let message = err.to_string();
            assert!(
                !message.contains("qz7w") && !message.contains("9753"),
                "{message}"
            );
            assert!(!message.contains(raw.trim()), "{message}");
            assert!(message.starts_with(&kind.label()), "{message}");
        }
        let err = IdentityKind::parse("qz7w-kind").unwrap_err().to_string();
        assert!(!err.contains("qz7w"), "{err}");
        let err = IdentityKind::parse("external:Qz7w")
            .unwrap_err()
            .to_string();
        assert!(!err.to_lowercase().contains("qz7w"), "{err}");
    }

    fn any_kind() -> impl Strategy<Value = IdentityKind> {
        prop_oneof![
            Just(IdentityKind::Email),
            Just(IdentityKind::Phone),
            Just(IdentityKind::MemberId),
            Just(IdentityKind::DeviceId),
            "[a-z0-9_-]{1,8}".prop_map(IdentityKind::External),
        ]
    }

    fn any_rules() -> impl Strategy<Value = NormalizeRules> {
        (
            prop_oneof![
                Just(None),
                Just(Some(1u16)),
                Just(Some(39)),
                Just(Some(44)),
                Just(Some(86)),
                (1u16..=999).prop_map(Some),
            ],
            any::<bool>(),
        )
            .prop_map(|(default_country_code, canonical_gmail)| NormalizeRules {
                default_country_code,
                canonical_gmail,
            })
    }

    /// Strings that look like identities of every kind, plus arbitrary text.
    fn plausible_raw() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ ]?[A-Za-z0-9._+'-]{1,20}@([A-Za-z0-9-]{1,10}[.]){1,3}[A-Za-z]{2,6}[.]?[ ]?",
            "[A-Za-z0-9.+]{1,20}@(gmail|googlemail|GMail)[.]com",
            "[A-Za-zÄÖÜäöüİΣß王]{1,10}@[a-zäöüİ王]{1,8}[.][a-z]{2,4}",
            "[ ]?[+]?(00)?[0-9 ().-]{4,20}",
            "[+]?[0-9]{1,3}[ ]?[(]0[)][ ]?[0-9 ]{6,12}",
            "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
            "\\PC{0,40}",
            ".{0,40}",
        ]
    }

    proptest! {
        #[test]
        fn normalize_is_idempotent(kind in any_kind(), raw in plausible_raw(), rules in any_rules()) {
            if let Ok(once) = normalize(&kind, &raw, &rules) {
                prop_assert_eq!(normalize(&kind, &once, &rules), Ok(once.clone()));
                if kind == IdentityKind::Phone {
                    prop_assert!(once.starts_with('+'));
                    prop_assert!(once[1..].bytes().all(|b| b.is_ascii_digit()));
                    prop_assert!((9..=16).contains(&once.len()));
                }
            }
        }

        #[test]
        fn surrounding_whitespace_does_not_matter(
            kind in any_kind(),
            raw in plausible_raw(),
            rules in any_rules(),
            before in "[ \t\n\u{A0}\u{3000}]{0,3}",
            after in "[ \t\n\u{A0}\u{3000}]{0,3}",
        ) {
            let padded = format!("{before}{raw}{after}");
            prop_assert_eq!(normalize(&kind, &padded, &rules), normalize(&kind, &raw, &rules));
        }

        #[test]
        fn errors_never_contain_the_value(
            kind in any_kind(),
            raw in "[a-zA-Z0-9@+.() -]{12,40}",
            rules in any_rules(),
        ) {
            if let Err(err) = normalize(&kind, &raw, &rules) {
                let trimmed = raw.trim();
                prop_assume!(trimmed.len() >= 12);
                prop_assert!(!err.to_string().contains(trimmed));
            }
        }
    }
}
