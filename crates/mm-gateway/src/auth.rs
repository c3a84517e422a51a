//! Who a client is: the credentials of its CONNECT (user and password, or a bearer token) or the
//! name in its verified client certificate, checked against a service's users.
//!
//! Passwords and tokens are stored only as argon2id hashes (PHC strings, as `mm-gateway passwd`
//! prints them). Verifying one is deliberately costly (tens of milliseconds), so the acceptor
//! runs it off the event loop, a few at a time; an unknown user costs the same as a wrong
//! password, so timing does not tell which user names exist.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use mm_wire::handshake::ConnectOptions;

use crate::config::security::ServiceSecurityConfig;
#[cfg(test)]
use crate::config::security::check_hash;
use crate::permissions::Grant;

/// Hash verified when the user is unknown, so that the answer takes as long as for a known user.
/// (The hash of a random string; its parameters are argon2's defaults.)
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$bW0tZ2F0ZXdheS1kZWNveQ$5HHPcbdEJjdAtMUyjMOeN1s4WtLdqp2uPOjvtgQq9Wk";

/// Hashes a password or token with argon2id and argon2's default parameters (19 MiB, two passes),
/// as a PHC string for the configuration file.
pub fn hash_secret(secret: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| error.to_string())
}

fn verify(secret: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(secret.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// What a client presented.
#[derive(Debug, Clone, Default)]
pub(crate) struct Credentials {
    /// `user` and `password` from CONNECT.
    pub(crate) user: Option<(String, String)>,
    /// `token` from CONNECT.
    pub(crate) token: Option<String>,
    /// Names in its client certificate, verified against the client CA (common name, DNS and
    /// e-mail alternative names).
    pub(crate) certificate_names: Vec<String>,
}

impl Credentials {
    /// The credentials of a CONNECT; a `user` without `password` counts as one with an empty
    /// password (and fails).
    pub(crate) fn from_connect(options: &ConnectOptions, certificate_names: Vec<String>) -> Self {
        Credentials {
            user: options.user.clone().map(|user| {
                let password = options.password.clone().unwrap_or_default();
                (user, password)
            }),
            token: options.token.clone(),
            certificate_names,
        }
    }

    /// Whether the client presented nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.user.is_none() && self.token.is_none() && self.certificate_names.is_empty()
    }
}

/// Why authentication failed (logged; the client is told only that it failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthFailure {
    /// No credentials, and the service does not allow anonymous access.
    #[error("no credentials, and the service does not allow anonymous access")]
    AnonymousRefused,
    /// Unknown user or wrong password.
    #[error("wrong user name or password (user `{0}`)")]
    BadPassword(String),
    /// No user has that token.
    #[error("unknown token")]
    BadToken,
    /// A certificate was presented that maps to no user, and nothing else.
    #[error("the client certificate ({0}) names no user")]
    UnknownCertificate(String),
}

/// One user, compiled.
#[derive(Debug)]
struct User {
    name: String,
    password_hash: Option<String>,
    token_hash: Option<String>,
    certificate: Option<String>,
    grant: Arc<Grant>,
}

/// The users of one service.
#[derive(Debug)]
pub(crate) struct ServiceUsers {
    users: Vec<User>,
    anonymous: Option<Arc<Grant>>,
}

impl ServiceUsers {
    /// Compiles a service's configured users.
    pub(crate) fn new(config: &ServiceSecurityConfig) -> ServiceUsers {
        ServiceUsers {
            users: config
                .users
                .iter()
                .map(|user| User {
                    name: user.name.clone(),
                    password_hash: user.password_hash.clone(),
                    token_hash: user.token_hash.clone(),
                    certificate: user.certificate.clone(),
                    grant: Arc::new(Grant::new(Some(user.name.clone()), &user.grant)),
                })
                .collect(),
            anonymous: config
                .anonymous
                .as_ref()
                .map(|grant| Arc::new(Grant::new(None, grant))),
        }
    }

    /// Authenticates a client: user and password first, then the token, then the certificate;
    /// without any of them, anonymous access. Costly (argon2): run it off the event loop.
    pub(crate) fn authenticate(
        &self,
        credentials: &Credentials,
    ) -> Result<Arc<Grant>, AuthFailure> {
        if let Some((name, password)) = &credentials.user {
            let user = self.users.iter().find(|user| &user.name == name);
            let hash = user
                .and_then(|user| user.password_hash.as_deref())
                .unwrap_or(DECOY_HASH);
            let verified = verify(password, hash);
            return match user {
                Some(user) if verified && user.password_hash.is_some() => Ok(user.grant.clone()),
                _ => Err(AuthFailure::BadPassword(name.clone())),
            };
        }
        if let Some(token) = &credentials.token {
            let mut found = None;
            let mut tried = false;
            for user in &self.users {
                if let Some(hash) = &user.token_hash {
                    tried = true;
                    if found.is_none() && verify(token, hash) {
                        found = Some(user.grant.clone());
                    }
                }
            }
            if !tried {
                verify(token, DECOY_HASH);
            }
            return found.ok_or(AuthFailure::BadToken);
        }
        if !credentials.certificate_names.is_empty() {
            return self
                .users
                .iter()
                .find(|user| {
                    user.certificate
                        .as_ref()
                        .is_some_and(|name| credentials.certificate_names.contains(name))
                })
                .map(|user| user.grant.clone())
                .or_else(|| self.anonymous.clone())
                .ok_or_else(|| {
                    AuthFailure::UnknownCertificate(credentials.certificate_names.join(", "))
                });
        }
        self.anonymous.clone().ok_or(AuthFailure::AnonymousRefused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::security::{GrantConfig, UserConfig};

    /// A cheap argon2id hash for tests (the verifier takes the parameters from the string).
    pub(crate) fn cheap_hash(secret: &str) -> String {
        let params = argon2::Params::new(256, 1, 1, None).unwrap();
        let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        argon
            .hash_password(secret.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    fn users(anonymous: bool) -> ServiceUsers {
        let user = |name: &str, password: Option<&str>, token: Option<&str>, cert: Option<&str>| {
            UserConfig {
                name: name.into(),
                password_hash: password.map(cheap_hash),
                token_hash: token.map(cheap_hash),
                certificate: cert.map(str::to_owned),
                grant: GrantConfig::default(),
            }
        };
        ServiceUsers::new(&ServiceSecurityConfig {
            users: vec![
                user("alice", Some("wonderland"), None, None),
                user("svc", None, Some("t0ken-t0ken-t0ken"), Some("svc.example")),
            ],
            anonymous: anonymous.then(GrantConfig::default),
        })
    }

    fn password(user: &str, password: &str) -> Credentials {
        Credentials {
            user: Some((user.into(), password.into())),
            ..Credentials::default()
        }
    }

    #[test]
    fn passwords_tokens_certificates_anonymous() {
        let users = users(false);
        let who = |result: Result<Arc<Grant>, AuthFailure>| result.map(|g| g.who().to_owned());
        assert_eq!(
            who(users.authenticate(&password("alice", "wonderland"))),
            Ok("alice".into())
        );
        assert_eq!(
            who(users.authenticate(&password("alice", "wrong"))),
            Err(AuthFailure::BadPassword("alice".into()))
        );
        assert!(users.authenticate(&password("mallory", "x")).is_err());
        // A user without a password cannot log in with one.
        assert!(users.authenticate(&password("svc", "")).is_err());
        let token = |token: &str| Credentials {
            token: Some(token.into()),
            ..Credentials::default()
        };
        assert_eq!(
            who(users.authenticate(&token("t0ken-t0ken-t0ken"))),
            Ok("svc".into())
        );
        assert_eq!(
            who(users.authenticate(&token("nope"))),
            Err(AuthFailure::BadToken)
        );
        let certificate = Credentials {
            certificate_names: vec!["svc.example".into()],
            ..Credentials::default()
        };
        assert_eq!(who(users.authenticate(&certificate)), Ok("svc".into()));
        assert_eq!(
            who(users.authenticate(&Credentials::default())),
            Err(AuthFailure::AnonymousRefused)
        );
        let open = super::tests::users(true);
        assert_eq!(
            who(open.authenticate(&Credentials::default())),
            Ok("anonymous".into())
        );
    }

    #[test]
    fn hashes_are_argon2id_phc_strings() {
        let hash = hash_secret("pw").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(check_hash(&hash).is_ok());
        assert!(verify("pw", &hash));
        assert!(check_hash("plain").is_err());
        assert!(check_hash(DECOY_HASH).is_ok());
        assert!(
            check_hash("$argon2i$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$Zm9vYmFyZm9vYmFyZm9vYmFy").is_err()
        );
    }
}
