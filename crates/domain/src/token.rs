//! API tokens: what they are, how they look, and how they are checked. The store keeps only a
//! token's SHA-256; the token itself is shown once, when it is created.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};

use crate::ports::{Authenticate, Clock, StoreError, TokenStore, TokenStoreError};

/// Every token starts with this, so that one pasted in the wrong place is recognisable (and a
/// secret scanner can find it).
pub const TOKEN_PREFIX: &str = "sesw_";

/// Random bytes per token: 256 bits of entropy.
const TOKEN_BYTES: usize = 32;

/// The length of a token: the prefix and 43 base64url characters.
const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 43;

/// How stale `last_used_at` may grow before a request records its use again: a use is
/// recorded at most once a minute per token, not with a write on every request.
pub const LAST_USED_PRECISION: TimeDelta = TimeDelta::minutes(1);

/// What a token may do. `write` includes `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
}

impl Scope {
    /// The stored name: `read` or `write`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }

    /// Parses a stored or typed name.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Read, Self::Write]
            .into_iter()
            .find(|s| s.as_str() == value)
    }

    /// Whether a token of this scope may call an endpoint that needs `required`.
    #[must_use]
    pub fn allows(self, required: Self) -> bool {
        self >= required
    }
}

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Unique among tokens not revoked.
    pub name: String,
    pub scope: Scope,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A token about to be stored: its name, scope and hash.
#[derive(Clone, PartialEq, Eq)]
pub struct NewToken {
    pub name: String,
    pub scope: Scope,
    /// [`token_hash`] of the secret.
    pub hash: String,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A new token's secret. Its `Debug` hides it, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// A new random token: [`TOKEN_PREFIX`] and 32 bytes from the operating system's random
    /// source, base64url-encoded.
    ///
    /// # Errors
    /// The operating system's error when it has no randomness to give.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0_u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Self(format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )))
    }

    /// The token, to show once.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(..)")
    }
}

/// The hash a token is stored and looked up by: lower-case hex SHA-256 of the whole token.
/// A token carries 256 random bits, so a fast hash is as safe as a slow one, and looking it
/// up by its hash tells a timing observer nothing about the token itself.
#[must_use]
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` has the shape of one of ours (prefix, length, base64url alphabet), checked
/// before any lookup.
#[must_use]
pub fn looks_like_token(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token.starts_with(TOKEN_PREFIX)
        && token[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Who is calling: an authenticated token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub token_name: String,
    pub scope: Scope,
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token, a malformed one, or one that is unknown or revoked (a 401).
    #[error("the API token is missing, malformed, unknown or revoked")]
    Unauthorized,
    /// The token store could not be read (a 503).
    #[error(transparent)]
    Unavailable(StoreError),
}

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateTokenError {
    #[error("a token named {0:?} exists already (revoke it first, or choose another name)")]
    NameTaken(String),
    #[error("a token name is 1 to 64 letters, digits, '.', '_' or '-'")]
    InvalidName,
    #[error("no randomness for a token: {0}")]
    Random(String),
    #[error(transparent)]
    Store(StoreError),
}

/// Token management and authentication, on a [`TokenStore`].
#[derive(Clone)]
pub struct TokenService {
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService").finish_non_exhaustive()
    }
}

impl TokenService {
    #[must_use]
    pub fn new(store: Arc<dyn TokenStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Creates a token named `name` with `scope`; returns its secret (shown once) and record.
    ///
    /// # Errors
    /// [`CreateTokenError::InvalidName`], [`CreateTokenError::NameTaken`] when a token not
    /// revoked has the name, [`CreateTokenError::Random`], [`CreateTokenError::Store`].
    pub async fn create(
        &self,
        name: &str,
        scope: Scope,
    ) -> Result<(TokenSecret, ApiToken), CreateTokenError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid {
            return Err(CreateTokenError::InvalidName);
        }
        let secret =
            TokenSecret::generate().map_err(|e| CreateTokenError::Random(e.to_string()))?;
        let created_at = self.clock.now();
        let token = NewToken {
            name: name.to_owned(),
            scope,
            hash: token_hash(secret.expose()),
            created_at,
        };
        self.store.create_token(token).await.map_err(|e| match e {
            TokenStoreError::NameTaken => CreateTokenError::NameTaken(name.to_owned()),
            TokenStoreError::Store(e) => CreateTokenError::Store(e),
        })?;
        Ok((
            secret,
            ApiToken {
                name: name.to_owned(),
                scope,
                created_at,
                last_used_at: None,
                revoked_at: None,
            },
        ))
    }

    /// Every token, revoked ones included, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub async fn list(&self) -> Result<Vec<ApiToken>, StoreError> {
        self.store.tokens().await
    }

    /// Revokes the token named `name`; `false` when no token of that name is active.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written.
    pub async fn revoke(&self, name: &str) -> Result<bool, StoreError> {
        self.store
            .revoke_token(name.to_owned(), self.clock.now())
            .await
    }
}

#[async_trait]
impl Authenticate for TokenService {
    async fn authenticate(&self, token: &str) -> Result<Caller, AuthError> {
        if !looks_like_token(token) {
            return Err(AuthError::Unauthorized);
        }
        let found = self
            .store
            .token_by_hash(token_hash(token))
            .await
            .map_err(AuthError::Unavailable)?;
        let Some(found) = found.filter(|t| t.revoked_at.is_none()) else {
            return Err(AuthError::Unauthorized);
        };
        let now = self.clock.now();
        let stale = found
            .last_used_at
            .is_none_or(|at| now - at >= LAST_USED_PRECISION);
        if stale {
            // Best effort: a failure to record the use must not refuse a valid token.
            if let Err(error) = self.store.touch_token(found.name.clone(), now).await {
                tracing::warn!(error = %error, "could not record an API token's last use");
            }
        }
        Ok(Caller {
            token_name: found.name,
            scope: found.scope,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::ports::{MockClock, MockTokenStore};

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, minute, 0).unwrap()
    }

    fn clock(now: DateTime<Utc>) -> Arc<MockClock> {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now);
        Arc::new(clock)
    }

    fn stored(last_used_at: Option<DateTime<Utc>>, revoked: bool) -> ApiToken {
        ApiToken {
            name: "ci".into(),
            scope: Scope::Read,
            created_at: at(0),
            last_used_at,
            revoked_at: revoked.then(|| at(1)),
        }
    }

    #[test]
    fn tokens_are_random_prefixed_and_recognisable() {
        let a = TokenSecret::generate().unwrap();
        let b = TokenSecret::generate().unwrap();
        assert_ne!(a, b);
        assert!(looks_like_token(a.expose()), "{}", a.expose());
        assert!(a.expose().starts_with("sesw_"));
        assert_eq!(format!("{a:?}"), "TokenSecret(..)");
        assert!(!looks_like_token("sesw_short"));
        assert!(!looks_like_token(&a.expose().replace("sesw_", "xxxx_")));
        assert_eq!(token_hash("x").len(), 64);
    }

    #[test]
    fn write_includes_read() {
        assert!(Scope::Write.allows(Scope::Read));
        assert!(Scope::Write.allows(Scope::Write));
        assert!(Scope::Read.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Write));
    }

    #[tokio::test]
    async fn a_known_token_authenticates_and_its_use_is_recorded_at_most_once_a_minute() {
        let secret = TokenSecret::generate().unwrap();
        for (last_used, touched) in [
            (None, 1),
            (Some(at(9)), 1),
            (Some(at(9) + TimeDelta::seconds(30)), 0),
        ] {
            let mut store = MockTokenStore::new();
            let hash = token_hash(secret.expose());
            store
                .expect_token_by_hash()
                .withf(move |h| *h == hash)
                .returning(move |_| Ok(Some(stored(last_used, false))));
            store
                .expect_touch_token()
                .times(touched)
                .returning(|_, _| Ok(()));
            let service = TokenService::new(Arc::new(store), clock(at(10)));

            let caller = service.authenticate(secret.expose()).await.unwrap();

            assert_eq!(caller.token_name, "ci");
            assert_eq!(caller.scope, Scope::Read);
        }
    }

    #[tokio::test]
    async fn malformed_unknown_and_revoked_tokens_are_refused() {
        let secret = TokenSecret::generate().unwrap();
        let mut store = MockTokenStore::new();
        store.expect_token_by_hash().times(0);
        let service = TokenService::new(Arc::new(store), clock(at(10)));
        assert_eq!(
            service.authenticate("Bearer nonsense").await,
            Err(AuthError::Unauthorized)
        );

        for found in [None, Some(stored(None, true))] {
            let mut store = MockTokenStore::new();
            store
                .expect_token_by_hash()
                .returning(move |_| Ok(found.clone()));
            store.expect_touch_token().times(0);
            let service = TokenService::new(Arc::new(store), clock(at(10)));
            assert_eq!(
                service.authenticate(secret.expose()).await,
                Err(AuthError::Unauthorized)
            );
        }
    }

    #[tokio::test]
    async fn a_store_that_cannot_be_read_is_unavailable_not_unauthorized() {
        let secret = TokenSecret::generate().unwrap();
        let mut store = MockTokenStore::new();
        store
            .expect_token_by_hash()
            .returning(|_| Err(StoreError::Unavailable("down".into())));
        let service = TokenService::new(Arc::new(store), clock(at(10)));
        assert!(matches!(
            service.authenticate(secret.expose()).await,
            Err(AuthError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn token_names_are_checked_and_taken_names_refused() {
        let mut store = MockTokenStore::new();
        store
            .expect_create_token()
            .withf(|t| t.name == "ci" && t.scope == Scope::Write && t.hash.len() == 64)
            .returning(|_| Err(TokenStoreError::NameTaken));
        let service = TokenService::new(Arc::new(store), clock(at(10)));
        assert!(matches!(
            service.create("ci", Scope::Write).await,
            Err(CreateTokenError::NameTaken(_))
        ));
        assert!(matches!(
            service.create("has space", Scope::Read).await,
            Err(CreateTokenError::InvalidName)
        ));
    }
}
