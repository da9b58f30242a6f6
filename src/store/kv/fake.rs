//! An in-memory Couchbase collection for tests, with the port's exact
//! semantics and injected faults. Runtime-free: every operation yields once
//! before it runs, so concurrent tasks on any executor interleave at each
//! KV call.
//!
//! A [`FakeCluster`] holds the documents, a CAS counter and a manual clock
//! (document expiry and lease expiry both read it). Each server instance
//! talks to it through its own [`FakeKv`] node, which injects that node's
//! faults:
//! - [`Fault::AmbiguousApplied`]: the write applied, the answer says timeout;
//! - [`Fault::AmbiguousLost`]: the write did not apply, the answer says
//!   timeout;
//! - [`Fault::AmbiguousLate`]: the answer says timeout and the write lands
//!   later, just before the next operation anyone makes (with its original
//!   CAS or insert condition, as a delayed packet would);
//! - [`Fault::Unavailable`]: the call fails and nothing applied;
//! - [`Fault::Crash`]: the node dies at this call (after or before applying
//!   it) and fails every call until [`FakeKv::restart`]: the operation in
//!   progress is abandoned between two steps, as in a process crash;
//! - and latency ([`FakeKv::set_latency`]): a slow node's calls are overtaken
//!   by other nodes' calls.
//!
//! Faults are scripted by call number (the node's step counter) or drawn
//! from a seeded generator, so every schedule is reproducible.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use async_trait::async_trait;

use super::port::{Cas, Expiry, KvError, KvPort, Versioned, MAX_KEY_BYTES};

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A write applies but answers [`KvError::Ambiguous`].
    AmbiguousApplied,
    /// A write does not apply and answers [`KvError::Ambiguous`].
    AmbiguousLost,
    /// A write answers [`KvError::Ambiguous`] and applies later.
    AmbiguousLate,
    /// The call fails with [`KvError::Unavailable`]; nothing applied.
    Unavailable,
    /// The node crashes at this call; a write applies first when
    /// `after_apply`.
    Crash { after_apply: bool },
}

/// Per-call probabilities of random faults, in parts per thousand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultRates {
    pub ambiguous_applied: u32,
    pub ambiguous_lost: u32,
    pub ambiguous_late: u32,
    pub unavailable: u32,
    pub crash: u32,
}

#[derive(Debug, Clone)]
struct Doc {
    value: Vec<u8>,
    cas: u64,
    expires_at: Option<u64>,
}

#[derive(Debug, Clone)]
enum Write {
    Insert {
        key: String,
        value: Vec<u8>,
        expiry: Expiry,
    },
    Replace {
        key: String,
        value: Vec<u8>,
        cas: Cas,
        expiry: Expiry,
    },
    Remove {
        key: String,
        cas: Cas,
    },
    Increment {
        key: String,
        delta: u64,
        initial: u64,
    },
}

#[derive(Debug, Default)]
struct Docs {
    docs: HashMap<String, Doc>,
    last_cas: u64,
    /// Writes answered `AmbiguousLate`, landing before the next operation.
    late: Vec<Write>,
}

/// What a write did.
enum Applied {
    Cas(Cas),
    Counter(u64),
}

impl Docs {
    fn live(&mut self, key: &str, now: u64) -> Option<&Doc> {
        if self
            .docs
            .get(key)
            .is_some_and(|d| d.expires_at.is_some_and(|at| at <= now))
        {
            self.docs.remove(key);
        }
        self.docs.get(key)
    }

    fn next_cas(&mut self) -> u64 {
        self.last_cas += 1;
        self.last_cas
    }

    fn expires_at(expiry: Expiry, now: u64) -> Option<u64> {
        match expiry {
            Expiry::Never => None,
            Expiry::After(d) => {
                Some(now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
            }
        }
    }

    fn apply(&mut self, write: &Write, now: u64) -> Result<Applied, KvError> {
        match write {
            Write::Insert { key, value, expiry } => {
                if self.live(key, now).is_some() {
                    return Err(KvError::Exists);
                }
                let cas = self.next_cas();
                self.docs.insert(
                    key.clone(),
                    Doc {
                        value: value.clone(),
                        cas,
                        expires_at: Self::expires_at(*expiry, now),
                    },
                );
                Ok(Applied::Cas(Cas(cas)))
            }
            Write::Replace {
                key,
                value,
                cas,
                expiry,
            } => {
                match self.live(key, now) {
                    None => return Err(KvError::NotFound),
                    Some(doc) if doc.cas != cas.0 => return Err(KvError::CasMismatch),
                    Some(_) => {}
                }
                let next = self.next_cas();
                self.docs.insert(
                    key.clone(),
                    Doc {
                        value: value.clone(),
                        cas: next,
                        expires_at: Self::expires_at(*expiry, now),
                    },
                );
                Ok(Applied::Cas(Cas(next)))
            }
            Write::Remove { key, cas } => {
                match self.live(key, now) {
                    None => return Err(KvError::NotFound),
                    Some(doc) if doc.cas != cas.0 => return Err(KvError::CasMismatch),
                    Some(_) => {}
                }
                self.docs.remove(key);
                Ok(Applied::Cas(*cas))
            }
            Write::Increment {
                key,
                delta,
                initial,
            } => {
                let value = match self.live(key, now) {
                    None => *initial,
                    Some(doc) => {
                        let text = std::str::from_utf8(&doc.value)
                            .map_err(|_| KvError::Refused("counter is not text".into()))?;
                        let current: u64 = text
                            .parse()
                            .map_err(|_| KvError::Refused("counter is not a number".into()))?;
                        current.wrapping_add(*delta)
                    }
                };
                let cas = self.next_cas();
                let expires_at = self.docs.get(key).and_then(|d| d.expires_at);
                self.docs.insert(
                    key.clone(),
                    Doc {
                        value: value.to_string().into_bytes(),
                        cas,
                        expires_at,
                    },
                );
                Ok(Applied::Counter(value))
            }
        }
    }

    fn land_late_writes(&mut self, now: u64) {
        for write in std::mem::take(&mut self.late) {
            // A delayed write meets whatever happened meanwhile; its own
            // condition decides, and nobody hears the answer.
            let _ = self.apply(&write, now);
        }
    }
}

/// The shared documents and the manual clock of one fake cluster.
#[derive(Debug, Clone)]
pub struct FakeCluster {
    docs: Arc<Mutex<Docs>>,
    clock: Arc<AtomicU64>,
}

impl FakeCluster {
    /// An empty cluster whose clock reads `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Self {
            docs: Arc::default(),
            clock: Arc::new(AtomicU64::new(now_ms)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Docs> {
        // A test that panicked while holding the lock has failed already;
        // the documents are still consistent (each operation is one step).
        self.docs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The manual clock (Unix ms).
    pub fn now_ms(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    /// Moves the manual clock forward: leases and documents expire by it.
    pub fn advance(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    /// A node of this cluster without faults.
    pub fn node(&self) -> FakeKv {
        FakeKv {
            cluster: self.clone(),
            faults: Mutex::new(Faults::default()),
        }
    }

    /// The live value under `key`, bypassing every fault (for assertions).
    pub fn peek(&self, key: &str) -> Option<Vec<u8>> {
        let now = self.now_ms();
        self.lock().live(key, now).map(|d| d.value.clone())
    }

    /// The live keys starting with `prefix`, sorted (for assertions).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let now = self.now_ms();
        let mut docs = self.lock();
        let mut keys: Vec<String> = docs
            .docs
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.retain(|k| docs.live(k, now).is_some());
        keys.sort();
        keys
    }

    /// Lands every write still delayed by [`Fault::AmbiguousLate`].
    pub fn land_late_writes(&self) {
        let now = self.now_ms();
        self.lock().land_late_writes(now);
    }
}

#[derive(Debug, Default)]
struct Faults {
    calls: u64,
    /// Extra turns given to other tasks before each call: a slow link.
    latency: u32,
    crashed: bool,
    scripted: BTreeMap<u64, Fault>,
    rates: FaultRates,
    rng: u64,
}

impl Faults {
    fn next_random(&mut self) -> u64 {
        // splitmix64: small, seedable, good enough to pick faults.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The fault for the call about to run, counting it.
    fn draw(&mut self) -> Option<Fault> {
        self.calls += 1;
        if let Some(fault) = self.scripted.remove(&self.calls) {
            return Some(fault);
        }
        let r = self.rates;
        let total =
            r.ambiguous_applied + r.ambiguous_lost + r.ambiguous_late + r.unavailable + r.crash;
        if total == 0 {
            return None;
        }
        let mut roll = u32::try_from(self.next_random() % 1000).unwrap_or(0);
        for (rate, fault) in [
            (r.ambiguous_applied, Fault::AmbiguousApplied),
            (r.ambiguous_lost, Fault::AmbiguousLost),
            (r.ambiguous_late, Fault::AmbiguousLate),
            (r.unavailable, Fault::Unavailable),
            (
                r.crash,
                Fault::Crash {
                    after_apply: self.rng.is_multiple_of(2),
                },
            ),
        ] {
            if roll < rate {
                return Some(fault);
            }
            roll -= rate;
        }
        None
    }
}

/// One server's connection to a [`FakeCluster`], with its own faults.
#[derive(Debug)]
pub struct FakeKv {
    cluster: FakeCluster,
    faults: Mutex<Faults>,
}

fn timeout() -> KvError {
    KvError::Ambiguous("injected timeout".into())
}

fn crashed() -> KvError {
    KvError::Unavailable("the node crashed".into())
}

impl FakeKv {
    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cluster this node talks to.
    pub fn cluster(&self) -> &FakeCluster {
        &self.cluster
    }

    /// Injects `fault` at this node's `call`-th operation (1-based; see
    /// [`FakeKv::calls`]).
    pub fn fail_at(&self, call: u64, fault: Fault) {
        self.faults().scripted.insert(call, fault);
    }

    /// Draws random faults at `rates` from now on, seeded by `seed`.
    pub fn random_faults(&self, rates: FaultRates, seed: u64) {
        let mut faults = self.faults();
        faults.rates = rates;
        faults.rng = seed;
    }

    /// Makes every call of this node wait `turns` extra scheduler turns
    /// before it runs, so other nodes' calls overtake it.
    pub fn set_latency(&self, turns: u32) {
        self.faults().latency = turns;
    }

    async fn delay(&self) {
        let turns = self.faults().latency;
        for _ in 0..=turns {
            YieldNow::default().await;
        }
    }

    /// How many operations this node has been asked for so far.
    pub fn calls(&self) -> u64 {
        self.faults().calls
    }

    /// Whether the node is down after a [`Fault::Crash`].
    pub fn is_crashed(&self) -> bool {
        self.faults().crashed
    }

    /// Brings a crashed node back, as a restarted server process.
    pub fn restart(&self) {
        self.faults().crashed = false;
    }

    fn fault(&self) -> Result<Option<Fault>, KvError> {
        let mut faults = self.faults();
        if faults.crashed {
            return Err(crashed());
        }
        let fault = faults.draw();
        if matches!(fault, Some(Fault::Crash { .. })) {
            faults.crashed = true;
        }
        Ok(fault)
    }

    async fn read(&self, key: &str) -> Result<Versioned, KvError> {
        self.delay().await;
        check_key(key)?;
        match self.fault()? {
            Some(Fault::Crash { .. }) => return Err(crashed()),
            Some(_) => return Err(KvError::Unavailable("injected read failure".into())),
            None => {}
        }
        let now = self.cluster.now_ms();
        let mut docs = self.cluster.lock();
        docs.land_late_writes(now);
        docs.live(key, now)
            .map(|d| Versioned {
                value: d.value.clone(),
                cas: Cas(d.cas),
            })
            .ok_or(KvError::NotFound)
    }

    async fn write(&self, write: Write) -> Result<Applied, KvError> {
        self.delay().await;
        let key = match &write {
            Write::Insert { key, .. }
            | Write::Replace { key, .. }
            | Write::Remove { key, .. }
            | Write::Increment { key, .. } => key.clone(),
        };
        check_key(&key)?;
        let fault = self.fault()?;
        let now = self.cluster.now_ms();
        let mut docs = self.cluster.lock();
        docs.land_late_writes(now);
        match fault {
            None => docs.apply(&write, now),
            Some(Fault::AmbiguousApplied) => {
                let _ = docs.apply(&write, now);
                Err(timeout())
            }
            Some(Fault::AmbiguousLost) => Err(timeout()),
            Some(Fault::AmbiguousLate) => {
                docs.late.push(write);
                Err(timeout())
            }
            Some(Fault::Unavailable) => Err(KvError::Unavailable("injected failure".into())),
            Some(Fault::Crash { after_apply }) => {
                if after_apply {
                    let _ = docs.apply(&write, now);
                }
                Err(crashed())
            }
        }
    }
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() >= MAX_KEY_BYTES {
        return Err(KvError::Refused(format!("bad key length {}", key.len())));
    }
    Ok(())
}

fn cas_of(applied: Applied) -> Cas {
    match applied {
        Applied::Cas(cas) => cas,
        Applied::Counter(_) => Cas(0),
    }
}

#[async_trait]
impl KvPort for FakeKv {
    async fn get(&self, key: &str) -> Result<Versioned, KvError> {
        self.read(key).await
    }

    async fn get_many(&self, keys: &[String]) -> Vec<Result<Versioned, KvError>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.read(key).await);
        }
        out
    }

    async fn insert(&self, key: &str, value: &[u8], expiry: Expiry) -> Result<Cas, KvError> {
        self.write(Write::Insert {
            key: key.to_string(),
            value: value.to_vec(),
            expiry,
        })
        .await
        .map(cas_of)
    }

    async fn replace(
        &self,
        key: &str,
        value: &[u8],
        cas: Cas,
        expiry: Expiry,
    ) -> Result<Cas, KvError> {
        self.write(Write::Replace {
            key: key.to_string(),
            value: value.to_vec(),
            cas,
            expiry,
        })
        .await
        .map(cas_of)
    }

    async fn remove(&self, key: &str, cas: Cas) -> Result<(), KvError> {
        self.write(Write::Remove {
            key: key.to_string(),
            cas,
        })
        .await
        .map(|_| ())
    }

    async fn increment(&self, key: &str, delta: u64, initial: u64) -> Result<u64, KvError> {
        match self
            .write(Write::Increment {
                key: key.to_string(),
                delta,
                initial,
            })
            .await?
        {
            Applied::Counter(value) => Ok(value),
            Applied::Cas(_) => Err(KvError::Refused("not a counter".into())),
        }
    }

    fn now_ms(&self) -> u64 {
        self.cluster.now_ms()
    }

    async fn pause(&self, ms: u64) {
        // Simulated time passes while a writer waits, so a lease left by a
        // crashed writer expires without the test sleeping.
        self.cluster.advance(ms);
        YieldNow::default().await;
    }
}

/// Gives other tasks one turn: pending once, ready when polled again.
#[derive(Debug, Default)]
struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            Poll::Ready(())
        } else {
            self.yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn documents_follow_couchbase_semantics() {
        block_on(async {
            let kv = FakeCluster::new(1_000).node();
            assert_eq!(kv.get("k").await, Err(KvError::NotFound));
            let cas = kv.insert("k", b"one", Expiry::Never).await.expect("insert");
            assert_eq!(
                kv.insert("k", b"two", Expiry::Never).await,
                Err(KvError::Exists)
            );
            let got = kv.get("k").await.expect("get");
            assert_eq!((got.value.as_slice(), got.cas), (&b"one"[..], cas));
            let cas2 = kv
                .replace("k", b"two", cas, Expiry::Never)
                .await
                .expect("replace");
            assert_ne!(cas2, cas);
            assert_eq!(
                kv.replace("k", b"three", cas, Expiry::Never).await,
                Err(KvError::CasMismatch)
            );
            assert_eq!(kv.remove("k", cas).await, Err(KvError::CasMismatch));
            kv.remove("k", cas2).await.expect("remove");
            assert_eq!(
                kv.replace("k", b"x", cas2, Expiry::Never).await,
                Err(KvError::NotFound)
            );
            assert_eq!(kv.remove("k", cas2).await, Err(KvError::NotFound));
            assert_eq!(kv.increment("c", 1, 1).await, Ok(1));
            assert_eq!(kv.increment("c", 5, 1).await, Ok(6));
            assert_eq!(kv.get("c").await.expect("counter").value, b"6".to_vec());
            let many = kv.get_many(&["c".to_string(), "k".to_string()]).await;
            assert!(many[0].is_ok() && many[1] == Err(KvError::NotFound));
            let long = "x".repeat(MAX_KEY_BYTES);
            assert!(matches!(kv.get(&long).await, Err(KvError::Refused(_))));
        });
    }

    #[test]
    fn documents_expire_by_the_manual_clock_and_replace_clears_expiry() {
        block_on(async {
            let cluster = FakeCluster::new(0);
            let kv = cluster.node();
            let ttl = Expiry::After(Duration::from_millis(100));
            kv.insert("a", b"1", ttl).await.expect("insert");
            let cas = kv.insert("b", b"1", ttl).await.expect("insert");
            kv.replace("b", b"2", cas, Expiry::Never)
                .await
                .expect("replace");
            cluster.advance(99);
            assert!(kv.get("a").await.is_ok());
            cluster.advance(1);
            assert_eq!(kv.get("a").await, Err(KvError::NotFound));
            kv.insert("a", b"again", Expiry::Never)
                .await
                .expect("the key is free");
            assert_eq!(kv.get("b").await.expect("kept").value, b"2".to_vec());
        });
    }

    #[test]
    fn injected_faults_apply_or_not_as_named() {
        block_on(async {
            let cluster = FakeCluster::new(0);
            let kv = cluster.node();
            kv.fail_at(1, Fault::AmbiguousApplied);
            kv.fail_at(2, Fault::AmbiguousLost);
            kv.fail_at(3, Fault::Unavailable);
            kv.fail_at(4, Fault::AmbiguousLate);
            assert!(matches!(
                kv.insert("a", b"1", Expiry::Never).await,
                Err(KvError::Ambiguous(_))
            ));
            assert!(matches!(
                kv.insert("b", b"1", Expiry::Never).await,
                Err(KvError::Ambiguous(_))
            ));
            assert!(matches!(
                kv.insert("c", b"1", Expiry::Never).await,
                Err(KvError::Unavailable(_))
            ));
            assert!(matches!(
                kv.insert("d", b"1", Expiry::Never).await,
                Err(KvError::Ambiguous(_))
            ));
            assert_eq!(cluster.peek("a"), Some(b"1".to_vec()));
            assert_eq!(cluster.peek("b"), None);
            assert_eq!(cluster.peek("c"), None);
            assert_eq!(cluster.peek("d"), None, "a late write has not landed yet");
            assert!(kv.get("d").await.is_ok(), "it lands before the next call");
            assert_eq!(kv.calls(), 5);
        });
    }

    #[test]
    fn a_crash_stops_the_node_until_restart() {
        block_on(async {
            let cluster = FakeCluster::new(0);
            let kv = cluster.node();
            let other = cluster.node();
            kv.fail_at(2, Fault::Crash { after_apply: true });
            kv.insert("a", b"1", Expiry::Never)
                .await
                .expect("first call");
            assert!(kv.insert("b", b"1", Expiry::Never).await.is_err());
            assert!(kv.is_crashed());
            assert_eq!(
                cluster.peek("b"),
                Some(b"1".to_vec()),
                "applied before the crash"
            );
            assert!(kv.get("a").await.is_err(), "a crashed node answers nothing");
            assert!(other.get("a").await.is_ok(), "other nodes go on");
            kv.restart();
            assert!(kv.get("a").await.is_ok());
        });
    }

    #[test]
    fn random_faults_are_reproducible() {
        let run = |seed| {
            block_on(async move {
                let kv = FakeCluster::new(0).node();
                kv.random_faults(
                    FaultRates {
                        unavailable: 300,
                        ..FaultRates::default()
                    },
                    seed,
                );
                let mut outcomes = Vec::new();
                for i in 0..50 {
                    outcomes.push(
                        kv.insert(&format!("k{i}"), b"v", Expiry::Never)
                            .await
                            .is_ok(),
                    );
                }
                outcomes
            })
        };
        assert_eq!(run(7), run(7));
        let failures = run(7).iter().filter(|ok| !**ok).count();
        assert!(
            (5..=30).contains(&failures),
            "{failures} of 50 failed at 30%"
        );
    }
}
