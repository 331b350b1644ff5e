//! Password hashing: argon2id with OWASP's recommended parameters, PHC strings.

use argon2::password_hash::{
    Output, PasswordHash, PasswordHasher, PasswordVerifier, Salt, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::{Condvar, LazyLock, Mutex};

/// OWASP Password Storage Cheat Sheet: argon2id, 19 MiB, 2 iterations, 1 lane.
pub const MEMORY_KIB: u32 = 19_456;
pub const ITERATIONS: u32 = 2;
pub const LANES: u32 = 1;

/// Shortest and longest password accepted (long ones would only cost CPU).
pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("PasswordStrengthError: Password is too weak (at least {MIN_PASSWORD_LEN} characters)")]
    TooShort,
    #[error("Password is too long (at most {MAX_PASSWORD_LEN} characters)")]
    TooLong,
    #[error("password hashing failed")]
    Hashing,
}

/// At most one argon2 computation per core at a time. Requests run on a blocking pool
/// with many more threads than cores; unbounded, N concurrent logins each took 19 MiB
/// and fought over the caches, so logins/s fell well short of the raw verify rate.
/// Callers past the limit wait here, in order of arrival as the OS wakes them.
///
/// Each place in the gate comes with its own 19 MiB of argon2 memory, allocated on first
/// use and kept: a verification that allocated (and zeroed, and page-faulted) its memory
/// afresh spent about a tenth of its time doing so.
struct CoreGate {
    idle_memory: Mutex<Vec<Vec<Block>>>,
    busy: Mutex<usize>,
    freed: Condvar,
    cores: usize,
}

static GATE: LazyLock<CoreGate> = LazyLock::new(|| CoreGate {
    idle_memory: Mutex::new(Vec::new()),
    busy: Mutex::new(0),
    freed: Condvar::new(),
    cores: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
});

impl CoreGate {
    /// Run `work` in a place of the gate, with that place's argon2 memory.
    fn run<T>(&self, work: impl FnOnce(&mut [Block]) -> T) -> T {
        {
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            while *busy >= self.cores {
                busy = self.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
            }
            *busy += 1;
        }
        // Released on every way out, a panicking computation included.
        let mut slot = Slot { gate: self, memory: self.idle_memory.lock().unwrap_or_else(|p| p.into_inner()).pop() };
        let memory = slot.memory.get_or_insert_with(|| vec![Block::default(); MEMORY_KIB as usize]);
        work(memory)
    }
}

/// One taken place in the gate and its memory, given back when dropped.
struct Slot<'a> {
    gate: &'a CoreGate,
    memory: Option<Vec<Block>>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(memory) = self.memory.take() {
            self.gate.idle_memory.lock().unwrap_or_else(|p| p.into_inner()).push(memory);
        }
        let mut busy = self.gate.busy.lock().unwrap_or_else(|p| p.into_inner());
        *busy -= 1;
        self.gate.freed.notify_one();
    }
}

fn argon2() -> Argon2<'static> {
    // The parameters are constants within argon2's accepted ranges.
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Check the password policy, then hash.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(PasswordError::TooLong);
    }
    let salt = SaltString::generate(&mut OsRng);
    GATE.run(|_| argon2().hash_password(password.as_bytes(), &salt))
        .map(|hash| hash.to_string())
        .map_err(|_| PasswordError::Hashing)
}

/// Verify a password against a stored PHC string. Unparseable hashes never match.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_LEN {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let salt = with_our_parameters(&parsed).and_then(|salt| salt.decode_b64(&mut salt_bytes).ok());
    match (salt, parsed.hash) {
        (Some(salt), Some(expected)) => GATE.run(|memory| {
            let mut computed = vec![0u8; expected.len()];
            argon2().hash_password_into_with_memory(password.as_bytes(), salt, &mut computed, memory).is_ok()
                // `Output`'s equality is constant-time.
                && Output::new(&computed).is_ok_and(|computed| computed == expected)
        }),
        // Another algorithm, version or cost: argon2's own verifier, with fresh memory.
        _ => GATE.run(|_| argon2().verify_password(password.as_bytes(), &parsed).is_ok()),
    }
}

/// The salt of a hash made with guise's algorithm, version and parameters, which the
/// gate's memory fits.
fn with_our_parameters<'a>(parsed: &PasswordHash<'a>) -> Option<Salt<'a>> {
    let params = Params::try_from(parsed).ok()?;
    let ours = Algorithm::try_from(parsed.algorithm).ok() == Some(Algorithm::Argon2id)
        && parsed.version == Some(Version::V0x13.into())
        && (params.m_cost(), params.t_cost(), params.p_cost()) == (MEMORY_KIB, ITERATIONS, LANES);
    ours.then_some(())?;
    parsed.salt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_with_owasp_parameters_and_verifies() {
        let hash = hash_password("correct horse battery").unwrap_or_default();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong horse battery", &hash));
        assert!(!verify_password("anything", "not a phc string"));
    }

    #[test]
    fn concurrent_verifications_never_exceed_the_cores() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4 * GATE.cores)
            .map(|_| {
                let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
                std::thread::spawn(move || {
                    GATE.run(|_| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                })
            })
            .collect();
        for thread in threads {
            assert!(thread.join().is_ok());
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak >= 1 && peak <= GATE.cores, "peak {peak} with {} cores", GATE.cores);
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn other_parameters_verify_and_reused_memory_decides_nothing() {
        // A hash from before a change of cost takes argon2's own verifier.
        let older = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8192, 1, 1, None).unwrap());
        let salt = SaltString::generate(&mut OsRng);
        let phc = older.hash_password(b"correct horse battery", &salt).unwrap();
        assert!(verify_password("correct horse battery", &phc.to_string()));
        assert!(!verify_password("wrong horse battery", &phc.to_string()));
        // guise's own parameters take the gate's memory, again and again.
        let ours = hash_password("correct horse battery").unwrap();
        assert!(with_our_parameters(&PasswordHash::new(&ours).unwrap()).is_some());
        assert!(with_our_parameters(&phc).is_none());
        for _ in 0..2 * GATE.cores {
            assert!(verify_password("correct horse battery", &ours));
            assert!(!verify_password("correct horse batterz", &ours));
        }
        let cut = ours.rsplit_once('$').map(|(head, _)| head.to_owned()).unwrap();
        assert!(!verify_password("correct horse battery", &cut), "a hash without its output");
    }

    #[test]
    fn policy_is_enforced() {
        assert_eq!(hash_password("short"), Err(PasswordError::TooShort));
        assert_eq!(hash_password(&"x".repeat(2000)), Err(PasswordError::TooLong));
    }
}
