//! The subject grammar (SPEC §6.1, RV rules): validation, tokens, and the reference matcher.
//!
//! * A subject is 1 to 255 bytes of UTF-8, split by `.` into non-empty tokens.
//! * No token contains Unicode White_Space or a control character (Cc).
//! * `*` as a whole token matches exactly one token; `>` as a whole token, only last, matches one
//!   or more. A token mixing `*` or `>` with other characters (`ab*`) is invalid, not a literal.
//! * Subjects one publishes to, and non-empty reply subjects, contain no wildcards.
//! * Service names are a single token of 1 to 127 bytes without wildcards.
//!
//! Validation works on bytes (header subjects arrive as bytes) with an ASCII fast path: an ASCII
//! byte is valid in a token exactly when it is in `0x21..=0x7E` and not `.`; only non-ASCII
//! characters are decoded to check White_Space and Cc.
//!
//! [`matches`] is the plain reference matcher — token by token, no index — that the gateway's
//! subject index is tested against.

/// Longest subject, in bytes.
pub const MAX_SUBJECT_LEN: usize = 255;

/// Longest service name, in bytes.
pub const MAX_SERVICE_NAME_LEN: usize = 127;

/// Longest client name, in bytes.
pub const MAX_CLIENT_NAME_LEN: usize = 255;

/// The first token of subjects that belong to the gateway (SPEC §9).
pub const GATEWAY_TOKEN: &str = "_MM";

/// The first token of reply inboxes (SPEC §7.4).
pub const INBOX_TOKEN: &str = "_INBOX";

/// Why a subject, pattern or name is invalid. Token positions count from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectError {
    /// Zero bytes long.
    #[error("subject is empty")]
    Empty,
    /// Longer than allowed.
    #[error("{length} bytes long; the maximum is {max}")]
    TooLong {
        /// Its length in bytes.
        length: usize,
        /// The maximum.
        max: usize,
    },
    /// Not valid UTF-8.
    #[error("not valid UTF-8")]
    NotUtf8,
    /// Two dots in a row, or a dot at the start or the end.
    #[error("empty token at position {position}")]
    EmptyToken {
        /// The empty token's position.
        position: usize,
    },
    /// A token contains a Unicode White_Space character.
    #[error("token {position} contains white space")]
    WhiteSpace {
        /// The token's position.
        position: usize,
    },
    /// A token contains a control character.
    #[error("token {position} contains a control character")]
    ControlCharacter {
        /// The token's position.
        position: usize,
    },
    /// A token mixes `*` or `>` with other characters.
    #[error("token {position} mixes a wildcard with other characters")]
    MixedWildcard {
        /// The token's position.
        position: usize,
    },
    /// `>` is not the last token.
    #[error("`>` at token {position} is not the last token")]
    FullWildcardNotLast {
        /// The token's position.
        position: usize,
    },
    /// A wildcard in a subject that must be literal (publish, reply, service name).
    #[error("wildcard at token {position} is not allowed here")]
    WildcardNotAllowed {
        /// The token's position.
        position: usize,
    },
    /// A service name with more than one token.
    #[error("a service name is a single token (no `.`)")]
    MultipleTokens,
}

impl SubjectError {
    /// The position (from 1) of the offending token, if the error is about one token.
    pub fn position(&self) -> Option<usize> {
        match *self {
            SubjectError::EmptyToken { position }
            | SubjectError::WhiteSpace { position }
            | SubjectError::ControlCharacter { position }
            | SubjectError::MixedWildcard { position }
            | SubjectError::FullWildcardNotLast { position }
            | SubjectError::WildcardNotAllowed { position } => Some(position),
            _ => None,
        }
    }

    /// The offending token of `subject` (the string this error came from).
    pub fn offending_token<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject.split('.').nth(self.position()? - 1)
    }
}

/// What kind of subject a validated string is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectShape {
    /// No wildcards: a subject one can publish to (also a valid pattern).
    Literal,
    /// Contains `*` and/or a trailing `>`: a pattern only.
    Wildcard,
}

/// Validates a subscription pattern (wildcards allowed).
#[inline]
pub fn validate_pattern(pattern: &str) -> Result<SubjectShape, SubjectError> {
    validate_pattern_bytes(pattern.as_bytes())
}

/// Validates a subscription pattern given as raw header bytes.
#[inline]
pub fn validate_pattern_bytes(pattern: &[u8]) -> Result<SubjectShape, SubjectError> {
    scan(pattern, MAX_SUBJECT_LEN)
}

/// Validates a subject to publish to (no wildcards).
#[inline]
pub fn validate_subject(subject: &str) -> Result<(), SubjectError> {
    validate_subject_bytes(subject.as_bytes())
}

/// Validates a subject to publish to, given as raw header bytes.
#[inline]
pub fn validate_subject_bytes(subject: &[u8]) -> Result<(), SubjectError> {
    literal(subject, MAX_SUBJECT_LEN)
}

/// Validates a reply subject: empty (no reply) or a valid literal subject.
#[inline]
pub fn validate_reply_subject(reply_subject: &str) -> Result<(), SubjectError> {
    validate_reply_subject_bytes(reply_subject.as_bytes())
}

/// Validates a reply subject given as raw header bytes.
#[inline]
pub fn validate_reply_subject_bytes(reply_subject: &[u8]) -> Result<(), SubjectError> {
    if reply_subject.is_empty() {
        Ok(())
    } else {
        literal(reply_subject, MAX_SUBJECT_LEN)
    }
}

/// Validates a service name: one token, 1 to 127 bytes, no wildcard.
pub fn validate_service_name(name: &str) -> Result<(), SubjectError> {
    validate_service_name_bytes(name.as_bytes())
}

/// Validates a service name given as raw header bytes.
pub fn validate_service_name_bytes(name: &[u8]) -> Result<(), SubjectError> {
    if name.contains(&b'.') {
        // Report an empty token first if there is one, as for subjects.
        literal(name, MAX_SERVICE_NAME_LEN)?;
        return Err(SubjectError::MultipleTokens);
    }
    literal(name, MAX_SERVICE_NAME_LEN)
}

/// Validates a client name: any UTF-8 text up to 255 bytes (informational only).
pub fn validate_client_name(name: &[u8]) -> Result<(), SubjectError> {
    if name.len() > MAX_CLIENT_NAME_LEN {
        return Err(SubjectError::TooLong {
            length: name.len(),
            max: MAX_CLIENT_NAME_LEN,
        });
    }
    std::str::from_utf8(name)
        .map(|_| ())
        .map_err(|_| SubjectError::NotUtf8)
}

fn literal(subject: &[u8], max: usize) -> Result<(), SubjectError> {
    match scan(subject, max)? {
        SubjectShape::Literal => Ok(()),
        SubjectShape::Wildcard => Err(SubjectError::WildcardNotAllowed {
            position: first_wildcard_position(subject),
        }),
    }
}

fn first_wildcard_position(subject: &[u8]) -> usize {
    subject
        .split(|&byte| byte == b'.')
        .position(|token| token == b"*" || token == b">")
        .map_or(1, |index| index + 1)
}

/// The single pass behind every validator.
fn scan(subject: &[u8], max: usize) -> Result<SubjectShape, SubjectError> {
    if subject.is_empty() {
        return Err(SubjectError::Empty);
    }
    if subject.len() > max {
        return Err(SubjectError::TooLong {
            length: subject.len(),
            max,
        });
    }
    let mut shape = SubjectShape::Literal;
    let mut position = 1;
    let mut token_start = 0;
    let mut token_has_wildcard_char = false;
    let mut index = 0;
    while index <= subject.len() {
        let byte = subject.get(index).copied();
        match byte {
            None | Some(b'.') => {
                let token = &subject[token_start..index];
                match token {
                    [] => return Err(SubjectError::EmptyToken { position }),
                    b"*" => shape = SubjectShape::Wildcard,
                    b">" => {
                        if byte.is_some() {
                            return Err(SubjectError::FullWildcardNotLast { position });
                        }
                        shape = SubjectShape::Wildcard;
                    }
                    _ if token_has_wildcard_char => {
                        return Err(SubjectError::MixedWildcard { position });
                    }
                    _ => {}
                }
                position += 1;
                token_start = index + 1;
                token_has_wildcard_char = false;
                index += 1;
            }
            Some(b'*' | b'>') => {
                token_has_wildcard_char = true;
                index += 1;
            }
            Some(0x21..=0x7e) => index += 1,
            Some(0x00..=0x1f | 0x7f) => return Err(SubjectError::ControlCharacter { position }),
            Some(b' ') => return Err(SubjectError::WhiteSpace { position }),
            Some(_) => {
                // Non-ASCII: decode one character.
                // A character is at most 4 bytes: look at no more than that, so a subject
                // full of non-ASCII characters is still scanned in linear time.
                let rest = &subject[index..subject.len().min(index + 4)];
                let valid_prefix = match std::str::from_utf8(rest) {
                    Ok(text) => text,
                    Err(error) if error.valid_up_to() > 0 => {
                        // SAFETY: `valid_up_to` bytes of `rest` are valid UTF-8, as the error
                        // reports; the slice ends on a character boundary.
                        unsafe { std::str::from_utf8_unchecked(&rest[..error.valid_up_to()]) }
                    }
                    Err(_) => return Err(SubjectError::NotUtf8),
                };
                // `valid_prefix` is non-empty and starts at a character boundary.
                let Some(character) = valid_prefix.chars().next() else {
                    return Err(SubjectError::NotUtf8);
                };
                if character.is_whitespace() {
                    return Err(SubjectError::WhiteSpace { position });
                }
                if character.is_control() {
                    return Err(SubjectError::ControlCharacter { position });
                }
                index += character.len_utf8();
            }
        }
    }
    Ok(shape)
}

/// One token of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternToken<'a> {
    /// A literal token, matched byte for byte.
    Literal(&'a [u8]),
    /// `*`: exactly one token.
    AnyOne,
    /// `>`: one or more trailing tokens.
    AnyRest,
}

/// Splits a subject or pattern into its tokens (no validation).
#[inline]
pub fn tokens(subject: &str) -> std::str::Split<'_, char> {
    subject.split('.')
}

/// Splits a (validated) pattern into classified tokens.
pub fn pattern_tokens(pattern: &[u8]) -> impl Iterator<Item = PatternToken<'_>> {
    pattern
        .split(|&byte| byte == b'.')
        .map(|token| match token {
            b"*" => PatternToken::AnyOne,
            b">" => PatternToken::AnyRest,
            literal => PatternToken::Literal(literal),
        })
}

/// Reference matcher: does `pattern` match `subject`? Both are assumed valid (a valid pattern and
/// a valid literal subject); byte-exact and case-sensitive.
pub fn matches(pattern: &str, subject: &str) -> bool {
    matches_bytes(pattern.as_bytes(), subject.as_bytes())
}

/// Reference matcher on raw bytes.
pub fn matches_bytes(pattern: &[u8], subject: &[u8]) -> bool {
    let mut pattern_tokens = pattern_tokens(pattern);
    let mut subject_tokens = subject.split(|&byte| byte == b'.');
    loop {
        match (pattern_tokens.next(), subject_tokens.next()) {
            (None, None) => return true,
            (Some(PatternToken::AnyRest), Some(_)) => return true,
            (Some(PatternToken::AnyOne), Some(_)) => {}
            (Some(PatternToken::Literal(literal)), Some(token)) if literal == token => {}
            _ => return false,
        }
    }
}

/// Whether `subject` belongs to the gateway (first token `_MM`, SPEC §9).
#[inline]
pub fn is_gateway_subject(subject: &[u8]) -> bool {
    subject
        .strip_prefix(GATEWAY_TOKEN.as_bytes())
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per case: (pattern, subject, expected).
    const MATCH_TABLE: &[(&str, &str, bool)] = &[
        ("A.B", "A.B", true),
        ("A.B", "A.C", false),
        ("A.B", "a.b", false),
        ("A.*", "A.B", true),
        ("A.*", "A.B.C", false),
        ("A.*", "A", false),
        ("*.B", "A.B", true),
        ("*", "A", true),
        ("*", "A.B", false),
        ("A.>", "A.B", true),
        ("A.>", "A.B.C", true),
        ("A.>", "A", false),
        ("RUN.>", "RUN.SWIM.BIKE", true),
        ("RUN.>", "RUN", false),
        (">", "A", true),
        (">", "A.B.C", true),
        (">", "_INBOX.x.1", true),
        ("*.*", "A.B", true),
        ("*.*", "A", false),
        ("A.*.C", "A.B.C", true),
        ("A.*.C", "A.B.D", false),
        ("A.*.>", "A.B.C", true),
        ("A.*.>", "A.B", false),
        ("PRICES.*.>", "PRICES.NYSE.IBM", true),
        ("A.B.C", "A.B", false),
        ("A.B", "A.B.C", false),
        ("ü.x", "ü.x", true),
    ];

    #[test]
    fn match_table() {
        for &(pattern, subject, expected) in MATCH_TABLE {
            assert_eq!(validate_pattern(pattern).map(|_| ()), Ok(()), "{pattern}");
            assert_eq!(validate_subject(subject), Ok(()), "{subject}");
            assert_eq!(
                matches(pattern, subject),
                expected,
                "pattern {pattern:?} subject {subject:?}"
            );
        }
    }

    /// One line per case: (pattern, expected result of validate_pattern).
    const PATTERN_TABLE: &[(&str, Result<SubjectShape, SubjectError>)] = &[
        ("A", Ok(SubjectShape::Literal)),
        ("A.B.C", Ok(SubjectShape::Literal)),
        ("_INBOX.abc.1", Ok(SubjectShape::Literal)),
        ("A.*", Ok(SubjectShape::Wildcard)),
        ("A.>", Ok(SubjectShape::Wildcard)),
        (">", Ok(SubjectShape::Wildcard)),
        ("*", Ok(SubjectShape::Wildcard)),
        ("*.>", Ok(SubjectShape::Wildcard)),
        ("naïve.ü", Ok(SubjectShape::Literal)),
        ("a-b_c:d/e", Ok(SubjectShape::Literal)),
        ("", Err(SubjectError::Empty)),
        ("A..B", Err(SubjectError::EmptyToken { position: 2 })),
        (".A", Err(SubjectError::EmptyToken { position: 1 })),
        ("A.", Err(SubjectError::EmptyToken { position: 2 })),
        (".", Err(SubjectError::EmptyToken { position: 1 })),
        (
            "bad..subject",
            Err(SubjectError::EmptyToken { position: 2 }),
        ),
        ("ab*", Err(SubjectError::MixedWildcard { position: 1 })),
        ("A.>x", Err(SubjectError::MixedWildcard { position: 2 })),
        ("A.**", Err(SubjectError::MixedWildcard { position: 2 })),
        ("A.*b.C", Err(SubjectError::MixedWildcard { position: 2 })),
        (
            "A.>.B",
            Err(SubjectError::FullWildcardNotLast { position: 2 }),
        ),
        (
            ">.A",
            Err(SubjectError::FullWildcardNotLast { position: 1 }),
        ),
        ("A B", Err(SubjectError::WhiteSpace { position: 1 })),
        ("A.B C", Err(SubjectError::WhiteSpace { position: 2 })),
        ("A.\tB", Err(SubjectError::ControlCharacter { position: 2 })),
        ("A\nB", Err(SubjectError::ControlCharacter { position: 1 })),
        ("A\0", Err(SubjectError::ControlCharacter { position: 1 })),
        (
            "A\u{7f}",
            Err(SubjectError::ControlCharacter { position: 1 }),
        ),
        ("A.\u{85}", Err(SubjectError::WhiteSpace { position: 2 })),
        ("A.\u{a0}B", Err(SubjectError::WhiteSpace { position: 2 })),
        ("A.B\u{2003}", Err(SubjectError::WhiteSpace { position: 2 })),
        ("\u{3000}", Err(SubjectError::WhiteSpace { position: 1 })),
        (
            "A.\u{9f}",
            Err(SubjectError::ControlCharacter { position: 2 }),
        ),
    ];

    #[test]
    fn pattern_table() {
        for (pattern, expected) in PATTERN_TABLE {
            assert_eq!(&validate_pattern(pattern), expected, "pattern {pattern:?}");
        }
    }

    #[test]
    fn publish_subjects_reject_wildcards() {
        assert_eq!(validate_subject("A.B"), Ok(()));
        assert_eq!(
            validate_subject("A.*"),
            Err(SubjectError::WildcardNotAllowed { position: 2 })
        );
        assert_eq!(
            validate_subject(">"),
            Err(SubjectError::WildcardNotAllowed { position: 1 })
        );
        assert_eq!(
            validate_subject("ab*"),
            Err(SubjectError::MixedWildcard { position: 1 })
        );
        assert_eq!(validate_reply_subject(""), Ok(()));
        assert_eq!(validate_reply_subject("_INBOX.a.1"), Ok(()));
        assert_eq!(
            validate_reply_subject("_INBOX.*"),
            Err(SubjectError::WildcardNotAllowed { position: 2 })
        );
    }

    #[test]
    fn length_limits() {
        let max = "a".repeat(MAX_SUBJECT_LEN);
        assert_eq!(validate_subject(&max), Ok(()));
        assert_eq!(
            validate_subject(&format!("{max}b")),
            Err(SubjectError::TooLong {
                length: 256,
                max: 255
            })
        );
        assert_eq!(
            validate_service_name(&"s".repeat(128)),
            Err(SubjectError::TooLong {
                length: 128,
                max: 127
            })
        );
    }

    #[test]
    fn not_utf8_is_invalid() {
        assert_eq!(
            validate_pattern_bytes(b"A.\xff"),
            Err(SubjectError::NotUtf8)
        );
        assert_eq!(
            validate_subject_bytes(b"A.\xc3"),
            Err(SubjectError::NotUtf8)
        );
        assert_eq!(validate_client_name(b"\xff"), Err(SubjectError::NotUtf8));
    }

    #[test]
    fn service_names() {
        assert_eq!(validate_service_name("VULCAN"), Ok(()));
        assert_eq!(
            validate_service_name("A.B"),
            Err(SubjectError::MultipleTokens)
        );
        assert_eq!(
            validate_service_name("*"),
            Err(SubjectError::WildcardNotAllowed { position: 1 })
        );
        assert_eq!(validate_service_name(""), Err(SubjectError::Empty));
    }

    #[test]
    fn offending_token_is_named() {
        let error = validate_pattern("A.ab*.C").unwrap_err();
        assert_eq!(error.offending_token("A.ab*.C"), Some("ab*"));
        assert_eq!(
            error.to_string(),
            "token 2 mixes a wildcard with other characters"
        );
    }

    #[test]
    fn gateway_subjects() {
        assert!(is_gateway_subject(b"_MM.STATS"));
        assert!(is_gateway_subject(b"_MM"));
        assert!(!is_gateway_subject(b"_MMX.STATS"));
        assert!(!is_gateway_subject(b"MM.STATS"));
    }

    #[test]
    fn pattern_tokens_classify() {
        let tokens: Vec<_> = pattern_tokens(b"A.*.>").collect();
        assert_eq!(
            tokens,
            vec![
                PatternToken::Literal(b"A"),
                PatternToken::AnyOne,
                PatternToken::AnyRest
            ]
        );
    }
}
