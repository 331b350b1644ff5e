//! Password hashing: argon2id with OWASP's recommended parameters, PHC strings.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};
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
struct CoreGate {
    busy: Mutex<usize>,
    freed: Condvar,
    cores: usize,
}

static GATE: LazyLock<CoreGate> = LazyLock::new(|| CoreGate {
    busy: Mutex::new(0),
    freed: Condvar::new(),
    cores: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
});

impl CoreGate {
    fn run<T>(&self, work: impl FnOnce() -> T) -> T {
        {
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            while *busy >= self.cores {
                busy = self.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
            }
            *busy += 1;
        }
        // Released on every way out, a panicking computation included.
        let _slot = Slot(self);
        work()
    }
}

/// One taken place in the gate, given back when dropped.
struct Slot<'a>(&'a CoreGate);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut busy = self.0.busy.lock().unwrap_or_else(|p| p.into_inner());
        *busy -= 1;
        self.0.freed.notify_one();
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
    GATE.run(|| argon2().hash_password(password.as_bytes(), &salt))
        .map(|hash| hash.to_string())
        .map_err(|_| PasswordError::Hashing)
}

/// Verify a password against a stored PHC string. Unparseable hashes never match.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_LEN {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => GATE.run(|| argon2().verify_password(password.as_bytes(), &parsed).is_ok()),
        Err(_) => false,
    }
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
                    GATE.run(|| {
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
    fn policy_is_enforced() {
        assert_eq!(hash_password("short"), Err(PasswordError::TooShort));
        assert_eq!(hash_password(&"x".repeat(2000)), Err(PasswordError::TooLong));
    }
}
