//! Each tenant's secrets: what `env("NAME")` reads in its jobs, encrypted at rest.
//!
//! A value is sealed with XChaCha20-Poly1305 under the host's key and a random 24-byte nonce;
//! the associated data is the row's tenant and name, so a row copied to another tenant or name
//! does not decrypt. Each row records the id of its key (the first 8 hex digits of the key's
//! SHA-256): rotation puts the new key in `CODEAI_SECRET_KEY`, the old one in
//! `CODEAI_SECRET_KEY_OLD` (still decrypts), and `codeai secret rotate-key` ([`rotate`])
//! re-encrypts every row under the new key.
//!
//! The key ([`Keyring::from_env`]) is `CODEAI_SECRET_KEY` (32 bytes, hex or base64) or else the
//! file `CODEAI_SECRET_KEY_FILE` (default `.codeai/secret.key`), created with mode 0600 the
//! first time a value is sealed or opened. A key is never printed, and values never leave this
//! module but as the plaintext its caller asked for.

use super::rows::{execute, execute_all, fetch_all, fetch_as, scalar, RowExt};
use super::sql::{stmt, Param, Stmt};
use super::Database;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A tenant holds at most this many secrets (a store for credentials, not for data).
pub const MAX_SECRETS: i64 = 1_000;
/// The largest secret value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// The longest secret name.
pub const MAX_NAME_LEN: usize = 128;

/// Where the key file is when `CODEAI_SECRET_KEY_FILE` is unset.
pub const DEFAULT_KEY_FILE: &str = ".codeai/secret.key";

/// Secret names are spelt like environment variables: `[A-Za-z_][A-Za-z0-9_]{0,127}`.
pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= MAX_NAME_LEN
}

/// Why a secret cannot be stored or read. Messages name secrets and keys by name and id, never
/// a value or a key.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "`{0}` is not a secret name: names are 1 to 128 characters of A-Z, a-z, 0-9 and `_`, \
         not starting with a digit (like environment variables)"
    )]
    BadName(String),
    #[error("a secret value is 1 to {MAX_VALUE_BYTES} bytes (got {0})")]
    BadValue(usize),
    #[error(
        "tenant `{0}` has {MAX_SECRETS} secrets, the most a tenant may hold; delete one first"
    )]
    TooMany(String),
    #[error("no tenant `{0}`")]
    UnknownTenant(String),
    #[error("secret `{0}` was changed by another request at the same time; try again")]
    Busy(String),
    #[error(
        "secret `{name}` of tenant `{tenant}` was encrypted with key `{key_id}`, which is \
         neither CODEAI_SECRET_KEY nor in CODEAI_SECRET_KEY_OLD; configure that key, or set \
         the secret again"
    )]
    UnknownKey {
        tenant: String,
        name: String,
        key_id: String,
    },
    #[error(
        "secret `{name}` of tenant `{tenant}` does not decrypt: the row was changed or copied \
         from another tenant or name; set the secret again"
    )]
    Corrupt { tenant: String, name: String },
    #[error("the host's secret key: {0}")]
    Key(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A 32-byte key and its id.
#[derive(Clone)]
struct SecretKey {
    id: String,
    bytes: [u8; 32],
}

impl SecretKey {
    fn new(bytes: [u8; 32]) -> SecretKey {
        SecretKey {
            id: key_id(&bytes),
            bytes,
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(self.bytes))
    }
}

/// The id a row records for its key: the first 8 hex digits of the key's SHA-256.
pub fn key_id(key: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(key))[..8].to_string()
}

/// Reads a key written as 64 hex digits or as base64 (standard or URL-safe, padded or not).
/// The error never repeats the text.
pub fn parse_key(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()
    } else {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
    };
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| "not 32 bytes written as 64 hex digits or as base64".to_string())
}

/// Where the current key comes from.
enum Current {
    Given(SecretKey),
    /// Read, or created with a new random key, at first need.
    File(PathBuf),
}

/// The host's keys: the current one, which seals, and old ones that still open.
pub struct Keyring {
    current: Current,
    loaded: OnceLock<SecretKey>,
    old: Vec<SecretKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.current {
            Current::Given(k) => format!("key {}", k.id),
            Current::File(p) => format!("file {}", p.display()),
        };
        let old: Vec<&str> = self.old.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring")
            .field("current", &source)
            .field("old", &old)
            .finish()
    }
}

impl Keyring {
    /// `CODEAI_SECRET_KEY`, else the key file (`CODEAI_SECRET_KEY_FILE`, default
    /// [`DEFAULT_KEY_FILE`]); old keys from `CODEAI_SECRET_KEY_OLD` (comma-separated).
    pub fn from_env() -> Result<Keyring, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut keyring = match var("CODEAI_SECRET_KEY") {
            Some(text) => Keyring::with_key(
                parse_key(&text).map_err(|e| format!("CODEAI_SECRET_KEY is {e}"))?,
            ),
            None => Keyring::file(
                var("CODEAI_SECRET_KEY_FILE")
                    .map_or_else(|| DEFAULT_KEY_FILE.into(), PathBuf::from),
            ),
        };
        if let Some(list) = var("CODEAI_SECRET_KEY_OLD") {
            for (i, text) in list.split(',').filter(|t| !t.trim().is_empty()).enumerate() {
                let key = parse_key(text)
                    .map_err(|e| format!("key {} of CODEAI_SECRET_KEY_OLD is {e}", i + 1))?;
                keyring.old.push(SecretKey::new(key));
            }
        }
        Ok(keyring)
    }

    /// A keyring whose current key is `key`.
    pub fn with_key(key: [u8; 32]) -> Keyring {
        Keyring {
            current: Current::Given(SecretKey::new(key)),
            loaded: OnceLock::new(),
            old: Vec::new(),
        }
    }

    /// A keyring whose key is read from `path`, or created there with a random key at first need.
    pub fn file(path: impl Into<PathBuf>) -> Keyring {
        Keyring {
            current: Current::File(path.into()),
            loaded: OnceLock::new(),
            old: Vec::new(),
        }
    }

    /// A random key that lives as long as the process (tests, and hosts that keep no secrets).
    pub fn ephemeral() -> Keyring {
        Keyring::with_key(Key::generate().into())
    }

    /// The keyring with `keys` as old keys too.
    pub fn with_old(mut self, keys: &[[u8; 32]]) -> Keyring {
        self.old.extend(keys.iter().copied().map(SecretKey::new));
        self
    }

    fn current(&self) -> Result<&SecretKey, SecretError> {
        match &self.current {
            Current::Given(key) => Ok(key),
            Current::File(path) => {
                if let Some(key) = self.loaded.get() {
                    return Ok(key);
                }
                let key = load_or_create(path).map_err(SecretError::Key)?;
                Ok(self.loaded.get_or_init(|| key))
            }
        }
    }

    /// The id of the key new values are sealed with.
    pub fn current_id(&self) -> Result<String, SecretError> {
        Ok(self.current()?.id.clone())
    }

    fn find(&self, id: &str) -> Option<&SecretKey> {
        match self.current() {
            Ok(key) if key.id == id => Some(key),
            _ => self.old.iter().find(|k| k.id == id),
        }
    }

    /// Encrypts `value` as secret `name` of `tenant`.
    fn seal(&self, tenant: &str, name: &str, value: &str) -> Result<Sealed, SecretError> {
        let key = self.current()?;
        let nonce = XNonce::generate();
        let aad = associated_data(tenant, name);
        let ciphertext = key
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SecretError::Key("encryption failed".into()))?;
        Ok(Sealed {
            key_id: key.id.clone(),
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(ciphertext),
        })
    }

    /// Decrypts secret `name` of `tenant`.
    pub fn open(&self, tenant: &str, name: &str, sealed: &Sealed) -> Result<String, SecretError> {
        let key = self
            .find(&sealed.key_id)
            .ok_or_else(|| SecretError::UnknownKey {
                tenant: tenant.into(),
                name: name.into(),
                key_id: sealed.key_id.clone(),
            })?;
        let corrupt = || SecretError::Corrupt {
            tenant: tenant.into(),
            name: name.into(),
        };
        let nonce = B64.decode(&sealed.nonce).map_err(|_| corrupt())?;
        let nonce = XNonce::try_from(nonce.as_slice()).map_err(|_| corrupt())?;
        let ciphertext = B64.decode(&sealed.ciphertext).map_err(|_| corrupt())?;
        let aad = associated_data(tenant, name);
        let plain = key
            .cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| corrupt())?;
        String::from_utf8(plain).map_err(|_| corrupt())
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What binds a ciphertext to its row. Tenant and secret names contain no NUL.
fn associated_data(tenant: &str, name: &str) -> Vec<u8> {
    format!("codeai-secret/v1\0{tenant}\0{name}").into_bytes()
}

/// Reads the key file, or creates it (mode 0600, in a new directory if need be) with a random
/// key. Two processes creating it at once agree: the loser of `create_new` reads the winner's.
fn load_or_create(path: &Path) -> Result<SecretKey, String> {
    let read = |path: &Path| -> Result<SecretKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("failed to read `{}`: {e}", path.display()))?;
        parse_key(&text)
            .map(SecretKey::new)
            .map_err(|e| format!("`{}` is {e}", path.display()))
    };
    match std::fs::metadata(path) {
        Ok(_) => return read(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("failed to read `{}`: {e}", path.display())),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("failed to create `{}`: {e}", dir.display()))?;
    }
    let key: [u8; 32] = Key::generate().into();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            use std::io::Write as _;
            writeln!(file, "{}", hex::encode(key))
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("failed to write `{}`: {e}", path.display()))?;
            tracing::info!("created the secret key file `{}`", path.display());
            Ok(SecretKey::new(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(format!("failed to create `{}`: {e}", path.display())),
    }
}

/// A value as stored: its key's id, nonce and ciphertext (base64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: String,
    pub ciphertext: String,
}

/// A secret as lists show it: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub name: String,
    pub updated_at: DateTime<Utc>,
}

/// Stores `value` as secret `name` of `tenant`, replacing an older value; `true` when the
/// secret is new. The tenant must exist.
pub async fn put(
    db: &Database,
    keys: &Keyring,
    tenant: &str,
    name: &str,
    value: &str,
) -> Result<(SecretInfo, bool), SecretError> {
    if !valid_name(name) {
        return Err(SecretError::BadName(name.into()));
    }
    if value.is_empty() || value.len() > MAX_VALUE_BYTES {
        return Err(SecretError::BadValue(value.len()));
    }
    if super::tenants::tenant(db, tenant).await?.is_none() {
        return Err(SecretError::UnknownTenant(tenant.into()));
    }
    let sealed = keys.seal(tenant, name, value)?;
    let now = Utc::now();
    let info = SecretInfo {
        name: name.into(),
        updated_at: now,
    };
    // Replace; else insert while the tenant is under its limit. A concurrent insert of the
    // same name makes the insert do nothing, and the second round replaces it.
    for _ in 0..2 {
        let replaced = execute(
            db,
            &stmt(
                "UPDATE secrets SET key_id = ?, nonce = ?, ciphertext = ?, updated_at = ? \
                 WHERE tenant_id = ? AND name = ?",
                vec![
                    Param::Text(sealed.key_id.clone()),
                    Param::Text(sealed.nonce.clone()),
                    Param::Text(sealed.ciphertext.clone()),
                    Param::DateTime(now),
                    Param::Text(tenant.into()),
                    Param::Text(name.into()),
                ],
            ),
        )
        .await?;
        if replaced > 0 {
            return Ok((info, false));
        }
        let inserted = execute(
            db,
            &stmt(
                "INSERT INTO secrets (tenant_id, name, key_id, nonce, ciphertext, created_at, \
                 updated_at) SELECT ?, ?, ?, ?, ?, ?, ? \
                 WHERE (SELECT COUNT(*) FROM secrets WHERE tenant_id = ?) < ? \
                 ON CONFLICT (tenant_id, name) DO NOTHING",
                vec![
                    Param::Text(tenant.into()),
                    Param::Text(name.into()),
                    Param::Text(sealed.key_id.clone()),
                    Param::Text(sealed.nonce.clone()),
                    Param::Text(sealed.ciphertext.clone()),
                    Param::DateTime(now),
                    Param::DateTime(now),
                    Param::Text(tenant.into()),
                    Param::Int(MAX_SECRETS),
                ],
            ),
        )
        .await?;
        if inserted > 0 {
            return Ok((info, true));
        }
        if !exists(db, tenant, name).await? {
            return Err(SecretError::TooMany(tenant.into()));
        }
    }
    Err(SecretError::Busy(name.into()))
}

async fn exists(db: &Database, tenant: &str, name: &str) -> Result<bool, sqlx::Error> {
    let sql = "SELECT name FROM secrets WHERE tenant_id = ? AND name = ?";
    let params = vec![Param::Text(tenant.into()), Param::Text(name.into())];
    Ok(scalar::<String>(db, &stmt(sql, params)).await?.is_some())
}

/// The names of `tenant`'s secrets and when each was last set, by name.
pub async fn list(db: &Database, tenant: &str) -> Result<Vec<SecretInfo>, sqlx::Error> {
    let rows = fetch_all(
        db,
        &stmt(
            "SELECT name, updated_at FROM secrets WHERE tenant_id = ? ORDER BY name",
            vec![Param::Text(tenant.into())],
        ),
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| SecretInfo {
            name: r.text("name").unwrap_or_default(),
            updated_at: r.time("updated_at").unwrap_or_default(),
        })
        .collect())
}

/// Deletes secret `name` of `tenant`; `false` when there was none.
pub async fn delete(db: &Database, tenant: &str, name: &str) -> Result<bool, sqlx::Error> {
    Ok(execute(
        db,
        &stmt(
            "DELETE FROM secrets WHERE tenant_id = ? AND name = ?",
            vec![Param::Text(tenant.into()), Param::Text(name.into())],
        ),
    )
    .await?
        > 0)
}

/// Every secret of `tenant`, still sealed, by name: one query; [`Keyring::open`] decrypts the
/// ones a job uses.
pub async fn load(db: &Database, tenant: &str) -> Result<HashMap<String, Sealed>, sqlx::Error> {
    let sql = "SELECT name, key_id, nonce, ciphertext FROM secrets WHERE tenant_id = ?";
    let rows: Vec<(String, String, String, String)> =
        fetch_as(db, &stmt(sql, vec![Param::Text(tenant.into())])).await?;
    Ok(rows
        .into_iter()
        .map(|(name, key_id, nonce, ciphertext)| {
            let sealed = Sealed {
                key_id,
                nonce,
                ciphertext,
            };
            (name, sealed)
        })
        .collect())
}

/// What [`rotate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotated {
    /// Rows re-encrypted under the current key.
    pub reencrypted: u64,
    /// Rows that were under the current key already.
    pub current: u64,
}

/// Re-encrypts every row (every tenant's) that is not under the current key, in one
/// transaction. Every row is decrypted first: if one does not, nothing is written and the error
/// names it.
pub async fn rotate(db: &Database, keys: &Keyring) -> Result<Rotated, SecretError> {
    let current = keys.current_id()?;
    let sql = "SELECT tenant_id, name, key_id, nonce, ciphertext FROM secrets \
               ORDER BY tenant_id, name";
    let rows: Vec<(String, String, String, String, String)> =
        fetch_as(db, &stmt(sql, vec![])).await?;
    let mut updates: Vec<Stmt> = Vec::new();
    let mut done = Rotated {
        reencrypted: 0,
        current: 0,
    };
    for (tenant, name, key_id, nonce, ciphertext) in rows {
        if key_id == current {
            done.current += 1;
            continue;
        }
        let old = Sealed {
            key_id,
            nonce,
            ciphertext,
        };
        let value = keys.open(&tenant, &name, &old)?;
        let new = keys.seal(&tenant, &name, &value)?;
        // Only the row as it was read: a value set meanwhile is under the current key already.
        updates.push(stmt(
            "UPDATE secrets SET key_id = ?, nonce = ?, ciphertext = ? \
             WHERE tenant_id = ? AND name = ? AND nonce = ?",
            vec![
                Param::Text(new.key_id),
                Param::Text(new.nonce),
                Param::Text(new.ciphertext),
                Param::Text(tenant),
                Param::Text(name),
                Param::Text(old.nonce),
            ],
        ));
    }
    if !updates.is_empty() {
        done.reencrypted = execute_all(db, &updates).await?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_spelt_like_environment_variables() {
        for good in ["A", "_", "WAREHOUSE_API_KEY", "a1", &"X".repeat(128)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "1A", "A-B", "A.B", "A B", "Ä", "A=B", &"X".repeat(129)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn keys_are_hex_or_base64_and_errors_do_not_echo_them() {
        let key = [7u8; 32];
        assert_eq!(parse_key(&hex::encode(key)).unwrap(), key);
        assert_eq!(parse_key(&format!(" {}\n", B64.encode(key))).unwrap(), key);
        let err = parse_key("hunter2-hunter2").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(parse_key(&hex::encode([1u8; 16])).is_err());
        assert_eq!(key_id(&key).len(), 8);
    }

    #[test]
    fn a_value_opens_only_as_its_own_tenant_and_name_under_a_known_key() {
        let keys = Keyring::with_key([1; 32]);
        let sealed = keys.seal("acme", "TOKEN", "s3cret-value").unwrap();
        assert!(!sealed.ciphertext.contains("s3cret"));
        assert_eq!(keys.open("acme", "TOKEN", &sealed).unwrap(), "s3cret-value");
        assert!(matches!(
            keys.open("evil", "TOKEN", &sealed),
            Err(SecretError::Corrupt { .. })
        ));
        assert!(matches!(
            keys.open("acme", "OTHER", &sealed),
            Err(SecretError::Corrupt { .. })
        ));
        // A new key opens nothing of the old one's until the old one is listed.
        let rotated = Keyring::with_key([2; 32]);
        let err = rotated.open("acme", "TOKEN", &sealed).unwrap_err();
        assert!(matches!(err, SecretError::UnknownKey { .. }), "{err}");
        let rotated = rotated.with_old(&[[1; 32]]);
        assert_eq!(
            rotated.open("acme", "TOKEN", &sealed).unwrap(),
            "s3cret-value"
        );
        // Two seals of one value differ (random nonces).
        assert_ne!(
            keys.seal("acme", "TOKEN", "v").unwrap(),
            keys.seal("acme", "TOKEN", "v").unwrap()
        );
    }

    #[test]
    fn the_key_file_is_created_once_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("codeai_keyfile_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("nested").join("secret.key");
        let first = Keyring::file(&path).current_id().unwrap();
        let second = Keyring::file(&path).current_id().unwrap();
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
