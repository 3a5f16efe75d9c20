//! Independent signers for the end-to-end tests: JWTs (HS* with a secret,
//! RS* with RSA keys) and HMAC-SHA256 webhook signatures, made with the
//! `openssl` CLI, not with the code under test.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Two RSA keys in a temp folder (`good.pem`, `other.pem`) and the JWKS
/// with the public half of `good.pem` (kid `e2e`).
pub struct Keys {
    /// The folder of the key files.
    pub dir: tempfile::TempDir,
    /// JSON Web Key Set of `good.pem`.
    pub jwks: String,
}

/// Base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Run the `openssl` CLI with `input` on stdin; its stdout.
pub fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed");
    out.stdout
}

/// The keys, made once per test binary.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        for name in ["good.pem", "other.pem"] {
            let path = dir.path().join(name);
            openssl(&["genrsa", "-out", path.to_str().unwrap(), "2048"], b"");
        }
        let good = dir.path().join("good.pem");
        let modulus = String::from_utf8(openssl(
            &["rsa", "-in", good.to_str().unwrap(), "-noout", "-modulus"],
            b"",
        ))
        .unwrap();
        let hex = modulus.trim().trim_start_matches("Modulus=");
        let n: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let jwks = format!(
            r#"{{"keys":[{{"kty":"RSA","kid":"e2e","alg":"RS256","n":"{}","e":"AQAB"}}]}}"#,
            b64url(&n)
        );
        Keys { dir, jwks }
    })
}

/// A token with `alg` over `claims`; `key` is the HMAC secret or an RSA
/// key file name in the key folder.
pub fn token(alg: &str, claims: &str, key: &str) -> String {
    let input = format!(
        "{}.{}",
        b64url(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes()),
        b64url(claims.as_bytes())
    );
    let digest = format!("-sha{}", &alg[2..]);
    let sig = if alg.starts_with("HS") {
        openssl(
            &[
                "dgst",
                &digest,
                "-mac",
                "HMAC",
                "-macopt",
                &format!("key:{key}"),
                "-binary",
            ],
            input.as_bytes(),
        )
    } else if alg.starts_with("RS") {
        let path = keys().dir.path().join(key);
        openssl(
            &["dgst", &digest, "-sign", path.to_str().unwrap(), "-binary"],
            input.as_bytes(),
        )
    } else {
        Vec::new()
    };
    format!("{input}.{}", b64url(&sig))
}

/// Hex HMAC-SHA256 of `data` with `secret` (webhook signatures).
pub fn hmac_sha256_hex(secret: &str, data: &[u8]) -> String {
    let mac = openssl(
        &[
            "dgst",
            "-sha256",
            "-mac",
            "HMAC",
            "-macopt",
            &format!("key:{secret}"),
            "-binary",
        ],
        data,
    );
    mac.iter().map(|b| format!("{b:02x}")).collect()
}
