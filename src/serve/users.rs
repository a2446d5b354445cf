//! The users file (`--users FILE`): one line per login, `NAME ROLE VERIFIER`, where the verifier is
//! a SCRAM-SHA-256 verifier as PostgreSQL stores one in `pg_authid.rolpassword`
//! (`SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>`, base64). A verifier lets the server check
//! a password without holding it or anything that logs in in its place. Blank lines and lines
//! starting with `#` are ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use datafusion_postgres::pgwire::api::auth::sasl::scram::gen_salted_password;
use ring::{digest, hmac};

/// The iteration count PostgreSQL uses for new verifiers (`scram_iterations`' default).
pub const ITERATIONS: u32 = 4096;

/// What a login may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Any read-only SQL over the dataset, the functions and the report views.
    Analyst,
    /// Only the `reports.*` views, with small numbers suppressed.
    Publisher,
}

impl Role {
    /// The role's name, as the users file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Analyst => "analyst",
            Self::Publisher => "publisher",
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "analyst" => Ok(Self::Analyst),
            "publisher" => Ok(Self::Publisher),
            other => Err(format!(
                "unknown role '{other}': the roles are analyst and publisher"
            )),
        }
    }
}

/// A SCRAM-SHA-256 verifier: what the server keeps to check a password.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    /// PBKDF2's iteration count.
    pub iterations: u32,
    /// The salt the password was hashed with.
    pub salt: Vec<u8>,
    /// `H(HMAC(SaltedPassword, "Client Key"))`: checks a client's proof.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`: proves the server to the client.
    pub server_key: Vec<u8>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Verifier(..)")
    }
}

/// HMAC-SHA-256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message)
        .as_ref()
        .to_vec()
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

impl Verifier {
    /// The verifier of `password` with `salt`, as PostgreSQL computes it (SASLprep, then
    /// PBKDF2-HMAC-SHA-256; pgwire's implementation).
    pub fn of_password(password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = gen_salted_password(password, salt, iterations as usize);
        let client_key = hmac_sha256(&salted, b"Client Key");
        Self {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }
}

impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(&self.stored_key),
            BASE64.encode(&self.server_key)
        )
    }
}

impl FromStr for Verifier {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let shape = "a SCRAM-SHA-256 verifier (SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY)";
        let rest = text
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or_else(|| format!("not {shape}"))?;
        let (parameters, keys) = rest.split_once('$').ok_or_else(|| format!("not {shape}"))?;
        let (iterations, salt) = parameters
            .split_once(':')
            .ok_or_else(|| format!("not {shape}"))?;
        let (stored_key, server_key) =
            keys.split_once(':').ok_or_else(|| format!("not {shape}"))?;
        let decode = |part: &str, what: &str| {
            BASE64
                .decode(part)
                .map_err(|_| format!("the {what} of {shape} is not base64"))
        };
        let verifier = Self {
            iterations: iterations
                .parse()
                .map_err(|_| format!("the iteration count '{iterations}' is not a number"))?,
            salt: decode(salt, "salt")?,
            stored_key: decode(stored_key, "stored key")?,
            server_key: decode(server_key, "server key")?,
        };
        if verifier.stored_key.len() != 32 || verifier.server_key.len() != 32 {
            return Err(format!("the keys of {shape} are not 32 bytes each"));
        }
        if verifier.iterations < ITERATIONS {
            return Err(format!(
                "{} iterations is fewer than SCRAM's minimum of {ITERATIONS}",
                verifier.iterations
            ));
        }
        Ok(verifier)
    }
}

/// One login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// What the login may do.
    pub role: Role,
    /// What checks its password.
    pub verifier: Verifier,
}

/// Every login, by name.
#[derive(Debug, Default, Clone)]
pub struct Users(pub BTreeMap<String, User>);

/// Whether `name` can be a login name (PostgreSQL allows more; these survive a shell and a file).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@'))
}

impl Users {
    /// Reads a users file; an error names the file and line.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the users file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in the users file {}", path.display()))
    }

    fn parse(text: &str) -> Result<Self> {
        let mut users = BTreeMap::new();
        for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, role, verifier] = fields[..] else {
                bail!("line {number}: expected NAME ROLE VERIFIER");
            };
            if !valid_name(name) {
                bail!(
                    "line {number}: '{name}' is not a login name (letters, digits, _ . - @; at \
                     most 63)"
                );
            }
            let user = User {
                role: role
                    .parse()
                    .map_err(|e| anyhow::anyhow!("line {number}: {e}"))?,
                verifier: verifier
                    .parse()
                    .map_err(|e| anyhow::anyhow!("line {number}: {e}"))?,
            };
            if users.insert(name.to_owned(), user).is_some() {
                bail!("line {number}: {name} is listed twice");
            }
        }
        Ok(Self(users))
    }

    fn render(&self) -> String {
        let mut text = String::from(
            "# ebiq serve users: NAME ROLE SCRAM-SHA-256-VERIFIER (written by ebiq serve \
             --add-user)\n",
        );
        for (name, user) in &self.0 {
            text.push_str(&format!(
                "{name} {} {}\n",
                user.role.as_str(),
                user.verifier
            ));
        }
        text
    }
}

/// A new password, typed twice: at a terminal without echo, otherwise the first two lines of
/// standard input (for scripts). The two must match.
pub fn read_new_password() -> Result<String> {
    use std::io::{BufRead, IsTerminal};
    let (first, second) = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
        let second =
            rpassword::prompt_password("Password again: ").context("cannot read the password")?;
        (first, second)
    } else {
        let mut lines = std::io::stdin().lock().lines();
        let mut next = || -> Result<String> {
            Ok(lines
                .next()
                .context("standard input ends before two password lines")??)
        };
        (next()?, next()?)
    };
    if first != second {
        bail!("the two passwords differ; nothing was written");
    }
    Ok(first)
}

/// Adds (or replaces) `name` in the users file at `path`, creating it if absent. The file is
/// written whole to a temporary file beside it and renamed over it, so a reader never sees half a
/// file and a failure leaves the old one.
pub fn add_user(path: &Path, name: &str, role: Role, password: &str) -> Result<()> {
    if !valid_name(name) {
        bail!("'{name}' is not a login name (letters, digits, _ . - @; at most 63)");
    }
    if password.is_empty() {
        bail!("the password is empty");
    }
    let mut users = if path.exists() {
        Users::load(path)?
    } else {
        Users::default()
    };
    let salt: [u8; 16] = rand::random();
    users.0.insert(
        name.to_owned(),
        User {
            role,
            verifier: Verifier::of_password(password, &salt, ITERATIONS),
        },
    );
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(folder)
        .with_context(|| format!("cannot write beside {}", path.display()))?;
    file.write_all(users.render().as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifiers_print_as_postgres_stores_them_and_parse_back() {
        let verifier = Verifier::of_password("pencil", b"0123456789abcdef", ITERATIONS);
        let text = verifier.to_string();
        assert!(
            text.starts_with("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$"),
            "{text}"
        );
        assert_eq!(text.parse::<Verifier>().expect("parses"), verifier);
        assert!(
            "SCRAM-SHA-256$1000:c2FsdA==$a:b"
                .parse::<Verifier>()
                .is_err()
        );
        assert!("md5abc".parse::<Verifier>().is_err());
    }

    #[test]
    fn a_users_file_is_read_and_its_mistakes_named_by_line() {
        let verifier = Verifier::of_password("secret", b"0123456789abcdef", ITERATIONS);
        let text = format!("# team\n\nana analyst {verifier}\npip publisher {verifier}\n");
        let users = Users::parse(&text).expect("valid");
        assert_eq!(users.0["ana"].role, Role::Analyst);
        assert_eq!(users.0["pip"].role, Role::Publisher);
        assert_eq!(
            Users::parse(&users.render()).expect("round trip").0,
            users.0
        );

        let bad_role = format!("ana admin {verifier}\n");
        let error = format!("{:#}", Users::parse(&bad_role).expect_err("refused"));
        assert!(error.contains("line 1: unknown role 'admin'"), "{error}");
        let password = "ana analyst hunter2\n";
        let error = format!("{:#}", Users::parse(password).expect_err("refused"));
        assert!(
            error.contains("line 1: not a SCRAM-SHA-256 verifier"),
            "{error}"
        );
        let twice = format!("ana analyst {verifier}\nana publisher {verifier}\n");
        let error = format!("{:#}", Users::parse(&twice).expect_err("refused"));
        assert!(error.contains("line 2: ana is listed twice"), "{error}");
    }

    #[test]
    fn adding_a_user_keeps_the_others_and_never_stores_the_password() {
        let dir = tempfile::tempdir().expect("a folder");
        let path = dir.path().join("users");
        add_user(&path, "ana", Role::Analyst, "first password").expect("added");
        add_user(&path, "pip", Role::Publisher, "second password").expect("added");
        add_user(&path, "ana", Role::Analyst, "new password").expect("replaced");
        let text = std::fs::read_to_string(&path).expect("written");
        assert!(!text.contains("password"), "{text}");
        let users = Users::load(&path).expect("valid");
        assert_eq!(users.0.len(), 2);
        let ana = &users.0["ana"].verifier;
        assert_eq!(
            Verifier::of_password("new password", &ana.salt, ana.iterations),
            *ana
        );
        assert!(add_user(&path, "bad name", Role::Analyst, "x").is_err());
    }
}
