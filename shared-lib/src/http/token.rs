//! Bearer tokens, checked the one way every service checks them (the registry's credentials,
//! the recommender's `EVENTS_TOKEN`): a token is kept only as its sha256 and compared in
//! constant time on that digest, so neither its bytes nor its length leak; it is never logged.

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The sha256 of a token. Surrounding whitespace is not part of a token (a trailing newline
/// from `echo` or a mounted file must not change it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.trim().as_bytes()).into())
    }

    /// A digest written as 64 hex digits (as in a credentials file); `None` otherwise.
    pub fn from_hex(hex_digits: &str) -> Option<Self> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_digits, &mut digest).ok()?;
        Some(Self(digest))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether `other` is the same digest, in constant time.
    pub fn matches(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// Never shows the digest: a log line or a panic message must not help anyone guess.
impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case), if the
/// request has one.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let header = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn digests_ignore_surrounding_whitespace_and_match_only_the_same_token() {
        let token = TokenDigest::of("0123456789abcdef");
        assert!(token.matches(&TokenDigest::of(" 0123456789abcdef\n")));
        assert!(!token.matches(&TokenDigest::of("0123456789abcde")));
        assert!(!token.matches(&TokenDigest::of("0123456789abcdefX")));
        assert_eq!(TokenDigest::from_hex(&token.to_hex()), Some(token));
        assert_eq!(TokenDigest::from_hex("not hex"), None);
        assert_eq!(format!("{token:?}"), "TokenDigest(..)");
    }

    #[test]
    fn only_a_bearer_header_yields_a_token() {
        let cases = [
            (None, None),
            (Some("Bearer abc"), Some("abc")),
            (Some("bearer  abc "), Some("abc")),
            (Some("Bearer "), None),
            (Some("Basic abc"), None),
            (Some("abc"), None),
        ];
        for (header, expected) in cases {
            let mut req = TestRequest::default();
            if let Some(h) = header {
                req = req.insert_header((AUTHORIZATION, h));
            }
            let req = req.to_http_request();
            assert_eq!(bearer_token(&req), expected, "{header:?}");
        }
    }
}
