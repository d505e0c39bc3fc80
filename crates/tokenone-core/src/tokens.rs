//! Credentials: Argon2id password hashes, HS256 JWTs with the algorithm pinned, and random
//! opaque secrets (refresh ids, invite tokens, CSRF tokens).

use crate::ids::{FamilyId, TenantId, TokenId, UserId};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm as ArgonAlg, Argon2, Params, Version};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Argon2id with the configured cost (at least m=19456 KiB, t=2, p=1).
#[derive(Clone, Debug)]
pub struct PasswordHasherCfg {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl PasswordHasherCfg {
    fn argon2(&self) -> Argon2<'static> {
        // Parameters are validated by the configuration (>= the minimums), so they are in range.
        let params = Params::new(self.memory_kib, self.iterations, 1, None).expect("argon2 params");
        Argon2::new(ArgonAlg::Argon2id, Version::V0x13, params)
    }

    pub fn hash(&self, password: &str) -> String {
        let salt = SaltString::generate(&mut OsRng);
        // Hashing with valid params and a generated salt cannot fail.
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .expect("argon2 hash")
            .to_string()
    }

    /// Verifies against a stored PHC string; parameters come from the string itself.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        match PasswordHash::new(phc) {
            Ok(h) => self.argon2().verify_password(password.as_bytes(), &h).is_ok(),
            Err(_) => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

/// Claims of both token kinds. `fam` ties an access token to its login session so that logout
/// and refresh-token theft revoke the session's access tokens too.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    pub tid: TenantId,
    pub typ: TokenType,
    pub iat: i64,
    pub exp: i64,
    pub jti: TokenId,
    pub fam: FamilyId,
}

#[derive(Clone)]
pub struct JwtKeys {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(****)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is invalid")]
    Invalid,
    #[error("token has expired")]
    Expired,
    #[error("wrong kind of token")]
    WrongType,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        JwtKeys {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn issue(&self, claims: &Claims) -> String {
        // HS256 signing of a serialisable struct cannot fail.
        encode(&Header::new(Algorithm::HS256), claims, &self.enc).expect("jwt encode")
    }

    /// Verifies signature (HS256 only), expiry (5 s leeway) and the token type.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, TokenError> {
        let data = decode::<Claims>(token, &self.dec, &self.validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        })?;
        if data.claims.typ != expected {
            return Err(TokenError::WrongType);
        }
        Ok(data.claims)
    }
}

/// `n` random base62 characters from the OS generator.
pub fn random_base62(n: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, n)
}

/// SHA-256 hex of an opaque token, for storing single-use tokens (invites, OAuth state).
pub fn sha256_hex(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
        assert_eq!(hex(&[]), "");
    }

    fn claims(typ: TokenType, iat: i64, exp: i64) -> Claims {
        Claims {
            sub: UserId::new(),
            tid: TenantId::new(),
            typ,
            iat,
            exp,
            jti: TokenId::new(),
            fam: FamilyId::new(),
        }
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn issues_and_verifies() {
        let k = JwtKeys::new(b"0123456789abcdef0123456789abcdef");
        let c = claims(TokenType::Access, now(), now() + 900);
        let t = k.issue(&c);
        assert_eq!(k.verify(&t, TokenType::Access).unwrap().sub, c.sub);
        assert_eq!(k.verify(&t, TokenType::Refresh).unwrap_err(), TokenError::WrongType);
    }

    #[test]
    fn refuses_other_keys_expired_and_alg_none() {
        let k = JwtKeys::new(b"0123456789abcdef0123456789abcdef");
        let other = JwtKeys::new(b"another-secret-another-secret-xx");
        let t = other.issue(&claims(TokenType::Access, now(), now() + 900));
        assert_eq!(k.verify(&t, TokenType::Access).unwrap_err(), TokenError::Invalid);

        let old = k.issue(&claims(TokenType::Access, now() - 1000, now() - 10));
        assert_eq!(k.verify(&old, TokenType::Access).unwrap_err(), TokenError::Expired);
        let in_leeway = k.issue(&claims(TokenType::Access, now() - 1000, now() - 2));
        assert!(k.verify(&in_leeway, TokenType::Access).is_ok(), "leeway is 5 s");

        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64.encode(serde_json::to_vec(&claims(TokenType::Access, now(), now() + 900)).unwrap());
        assert_eq!(
            k.verify(&format!("{header}.{payload}."), TokenType::Access)
                .unwrap_err(),
            TokenError::Invalid
        );
        let hs512 = b64.encode(br#"{"alg":"HS512","typ":"JWT"}"#);
        assert_eq!(
            k.verify(&format!("{hs512}.{payload}.abc"), TokenType::Access)
                .unwrap_err(),
            TokenError::Invalid
        );
        assert_eq!(k.verify("garbage", TokenType::Access).unwrap_err(), TokenError::Invalid);
    }

    #[test]
    fn argon2id_round_trip() {
        let h = PasswordHasherCfg {
            memory_kib: 19_456,
            iterations: 2,
        };
        let phc = h.hash("correct horse");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(h.verify("correct horse", &phc));
        assert!(!h.verify("wrong horse", &phc));
        assert!(!h.verify("x", "not a hash"));
    }

    #[test]
    fn base62_secrets() {
        let s = random_base62(32);
        assert_eq!(s.len(), 32);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(s, random_base62(32));
    }
}
