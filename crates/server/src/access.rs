//! Who may connect: anyone, or whoever knows the server password (as a
//! Mumble server password). The config holds only an Argon2id hash in PHC
//! form (`$argon2id$v=19$m=...`), made with `squawk-server hash-password`.
//!
//! Every password check and hash (the server password at `hello`, account
//! sign-ins, new account passwords) runs on a small pool of long-lived
//! threads ([`verify_password`], [`hash_password`]), each of which keeps
//! Argon2's working memory (19 MiB with the default parameters) for its
//! next call. Allocating it per call let the C allocator keep every block
//! resident in some thread's arena: 126 MB of RSS after 11 sign-ins. Now
//! the resident cost is at most one block per pool thread (one per core).

use std::sync::{Arc, Mutex, OnceLock, mpsc};

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, SaltString, rand_core::OsRng},
};

/// Largest Argon2 working memory a stored hash may ask for, KiB (1 KiB
/// blocks): a tampered or exotic hash cannot make the server allocate more.
pub const MAX_MEMORY_KIB: u32 = 256 * 1024;

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// The hashing threads' queue (started on first use).
fn pool() -> &'static Mutex<mpsc::Sender<Job>> {
    static POOL: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    let mut memory = Vec::new();
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a password hashing thread: {e}");
            }
        }
        Mutex::new(tx)
    })
}

/// Runs `f` on a hashing thread with its working memory and waits for it.
/// `None` when no hashing thread runs (they could not be started).
fn on_pool<T: Send + 'static>(f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    let job: Job = Box::new(move |memory| {
        let _ = tx.send(f(memory));
    });
    pool().lock().ok()?.send(job).ok()?;
    rx.recv().ok()
}

/// `memory`, grown to at least `blocks` blocks, as a slice of exactly that.
fn blocks(memory: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    &mut memory[..blocks]
}

/// The server's access rule.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// PHC string of the password hash; `None`: open server.
    hash: Option<Arc<str>>,
}

/// Why a `hello` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The server has a password and `hello` carried none.
    #[error("this server needs a password")]
    Missing,
    /// The password does not match.
    #[error("wrong password")]
    Wrong,
}

impl Access {
    /// Anyone may connect.
    pub fn open() -> Self {
        Self::default()
    }

    /// Only with the password whose Argon2 hash is `phc`.
    ///
    /// # Errors
    /// The PHC string cannot be parsed (say which part is wrong).
    pub fn with_hash(phc: &str) -> Result<Self, String> {
        PasswordHash::new(phc).map_err(|e| format!("password_hash is not a PHC string: {e}"))?;
        Ok(Self {
            hash: Some(phc.into()),
        })
    }

    /// Whether a password is needed.
    pub fn needs_password(&self) -> bool {
        self.hash.is_some()
    }

    /// Checks a `hello`'s password. Argon2 is slow on purpose (tens of ms):
    /// call it off the async threads.
    ///
    /// # Errors
    /// [`Refusal`] when a password is needed and missing or wrong.
    pub fn check(&self, password: Option<&str>) -> Result<(), Refusal> {
        let Some(phc) = &self.hash else {
            return Ok(());
        };
        let password = password.ok_or(Refusal::Missing)?;
        verify_password(phc, password)
            .then_some(())
            .ok_or(Refusal::Wrong)
    }
}

/// Whether `password` matches the Argon2 PHC string `phc` (false for a
/// malformed `phc`, or one asking for more than [`MAX_MEMORY_KIB`]). Slow
/// on purpose (tens of ms) and blocking: call it off the async threads.
/// Runs on the hashing pool (see the module docs).
pub fn verify_password(phc: &str, password: &str) -> bool {
    let (phc, password) = (phc.to_string(), password.to_string());
    on_pool(move |memory| verify_with(&phc, &password, memory)).unwrap_or(false)
}

/// [`verify_password`] with `memory` as Argon2's working memory: the
/// password is hashed with the hash's own algorithm, version, parameters
/// and salt, and the outputs compared in constant time (as
/// `argon2::PasswordVerifier` does, without allocating the memory).
fn verify_with(phc: &str, password: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let (Ok(version), Ok(params)) = (version, Params::try_from(&hash)) else {
        return false;
    };
    if params.m_cost() > MAX_MEMORY_KIB {
        return false;
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let n = params.block_count();
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks(memory, n))
        .is_err()
    {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// Hashes `password` with Argon2id (default parameters, random salt) into
/// the PHC string the config's `password_hash` takes. Blocking; runs on
/// the hashing pool.
///
/// # Errors
/// Argon2's error, e.g. for a password over its length limit.
pub fn hash_password(password: &str) -> Result<String, String> {
    let password = password.to_string();
    on_pool(move |memory| hash_with(&password, memory))
        .unwrap_or_else(|| Err("no password hashing thread".into()))
}

fn hash_with(password: &str, memory: &mut Vec<Block>) -> Result<String, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let salt = SaltString::generate(&mut OsRng);
    let argon = Argon2::default();
    let params = argon.params().clone();
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_buf)
        .map_err(|e| err(&e))?;
    let mut out = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    let n = params.block_count();
    argon
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt_bytes,
            &mut out,
            blocks(memory, n),
        )
        .map_err(|e| err(&e))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| err(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| err(&e))?),
    };
    Ok(hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_password_gets_in() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        let access = Access::with_hash(&phc).unwrap();
        assert!(access.needs_password());
        assert_eq!(access.check(Some("correct horse")), Ok(()));
        assert_eq!(access.check(Some("correct hors")), Err(Refusal::Wrong));
        assert_eq!(access.check(None), Err(Refusal::Missing));
        // Two hashes of one password differ (random salt) and both verify.
        let again = hash_password("correct horse").unwrap();
        assert_ne!(phc, again);
        assert_eq!(
            Access::with_hash(&again)
                .unwrap()
                .check(Some("correct horse")),
            Ok(())
        );
    }

    #[test]
    fn hashes_agree_with_the_argon2_crates_own_hasher_and_verifier_both_ways() {
        use argon2::{PasswordHasher, PasswordVerifier};
        // Ours, checked by the crate's verifier.
        let ours = hash_password("battery staple").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"battery staple", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"battery", &parsed)
                .is_err()
        );
        // The crate's, checked by ours (as made by older servers and tools).
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password(&theirs, "battery staple"));
        assert!(!verify_password(&theirs, "battery stapler"));
        // Argon2i and Argon2d hashes, other parameters: by their own terms.
        for alg in [Algorithm::Argon2i, Algorithm::Argon2d] {
            let a = Argon2::new(alg, Version::V0x13, Params::new(4096, 3, 1, None).unwrap());
            let phc = a.hash_password(b"pw", &salt).unwrap().to_string();
            assert!(verify_password(&phc, "pw"), "{phc}");
            assert!(!verify_password(&phc, "pW"), "{phc}");
        }
    }

    #[test]
    fn a_hash_asking_for_too_much_memory_is_refused_without_trying() {
        let salt = SaltString::generate(&mut OsRng);
        let params = Params::new(MAX_MEMORY_KIB + 1, 1, 1, None).unwrap();
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).unwrap(),
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&[0u8; 32]).unwrap()),
        };
        assert!(!verify_password(&hash.to_string(), "anything"));
        assert!(!verify_password("$argon2id$v=19$m=19456,t=2,p=1$bad", "x"));
    }

    #[test]
    fn an_open_server_takes_anyone_and_bad_hashes_are_refused() {
        assert_eq!(Access::open().check(None), Ok(()));
        assert_eq!(Access::open().check(Some("anything")), Ok(()));
        let e = Access::with_hash("hunter2").unwrap_err();
        assert!(e.contains("PHC"), "{e}");
    }
}
