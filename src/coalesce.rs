//! Request coalescing: look-ups that arrive while one is running wait for the next trip, which
//! fetches all of their keys at once.
//!
//! Every logged-in request looks its session up, and each trip to the database leaves the async
//! workers for the blocking pool, which costs thread wake-ups and context switches that on a
//! small machine outweigh the query. Under load, many requests want a session at the same
//! moment; a [`Coalescer`] runs one trip for all of them. One look-up at a time costs the same
//! one trip as before, plus a task spawn.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rocket::futures::FutureExt;
use rocket::tokio::{self, sync::oneshot};

/// Why a coalesced look-up has no answer.
#[derive(Debug)]
pub enum CoalesceError<E> {
    /// The trip that carried the key failed; every key of that trip gets the same error.
    Failed(Arc<E>),
    /// The trip's `fetch` panicked: a bug, reported to each of its callers.
    Panicked,
    /// The trip never answered: the runtime is shutting down.
    Abandoned,
}

type Answer<V, E> = Result<Option<V>, CoalesceError<E>>;

/// Batches concurrent look-ups by key into trips of at most `max_batch` keys, one trip at a time.
pub struct Coalescer<K, V, E> {
    queue: Arc<Mutex<Queue<K, V, E>>>,
    max_batch: usize,
}

struct Queue<K, V, E> {
    waiting: Vec<(K, oneshot::Sender<Answer<V, E>>)>,
    /// Whether a task is fetching; it keeps fetching until nobody waits.
    running: bool,
}

impl<K, V, E> Coalescer<K, V, E>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
    E: Send + Sync + 'static,
{
    /// A coalescer whose trips carry at most `max_batch` keys (at least 1).
    pub fn new(max_batch: usize) -> Self {
        let queue = Queue { waiting: Vec::new(), running: false };
        Self { queue: Arc::new(Mutex::new(queue)), max_batch: max_batch.max(1) }
    }

    /// The value for `key`, fetched together with every key asked for meanwhile. `fetch` gets the
    /// distinct keys of one trip and returns the values it found; a key it leaves out is `None`.
    /// When no trip is running, this call starts the task that makes them, with its `fetch`.
    pub async fn get<F, Fut>(&self, key: K, fetch: F) -> Answer<V, E>
    where
        F: Fn(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<HashMap<K, V>, E>> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut queue = lock(&self.queue);
            queue.waiting.push((key, answer));
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            tokio::spawn(fetch_until_idle(self.queue.clone(), self.max_batch, fetch));
        }
        answered.await.unwrap_or(Err(CoalesceError::Abandoned))
    }
}

/// Takes up to `max_batch` waiting keys, fetches them, answers their callers, and again, until
/// nobody waits.
async fn fetch_until_idle<K, V, E, F, Fut>(queue: Arc<Mutex<Queue<K, V, E>>>, max_batch: usize, fetch: F)
where
    K: Eq + Hash + Clone,
    V: Clone,
    F: Fn(Vec<K>) -> Fut,
    Fut: Future<Output = Result<HashMap<K, V>, E>>,
{
    loop {
        let trip: Vec<_> = {
            let mut queue = lock(&queue);
            if queue.waiting.is_empty() {
                queue.running = false;
                return;
            }
            let take = queue.waiting.len().min(max_batch);
            queue.waiting.drain(..take).collect()
        };
        let mut keys: Vec<K> = Vec::with_capacity(trip.len());
        for (key, _) in &trip {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        // A panic in `fetch` answers this trip's callers and leaves the task serving the rest:
        // a task that died would leave every later caller queued behind it.
        match AssertUnwindSafe(fetch(keys)).catch_unwind().await {
            Err(_panic) => {
                for (_, answer) in trip {
                    let _ = answer.send(Err(CoalesceError::Panicked));
                }
            }
            Ok(Ok(found)) => {
                for (key, answer) in trip {
                    // A caller that stopped waiting (its request was dropped) needs no answer.
                    let _ = answer.send(Ok(found.get(&key).cloned()));
                }
            }
            Ok(Err(error)) => {
                let error = Arc::new(error);
                for (_, answer) in trip {
                    let _ = answer.send(Err(CoalesceError::Failed(error.clone())));
                }
            }
        }
    }
}

/// The queue, even if a panic poisoned its lock: every change to it is a single step.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use rocket::futures::future::BoxFuture;

    use super::*;

    type Trips = Arc<Mutex<Vec<Vec<u32>>>>;

    type Found = Result<HashMap<u32, u32>, String>;

    /// A fetch that records each trip's keys, takes 50 ms (long beside a
    /// scheduler pass, so callers spawned together all arrive during it), and finds the even keys (value key * 10).
    fn recording(trips: &Trips) -> impl Fn(Vec<u32>) -> BoxFuture<'static, Found> + Send + 'static {
        let trips = trips.clone();
        move |keys: Vec<u32>| {
            trips.lock().unwrap().push(keys.clone());
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(keys.into_iter().filter(|k| k % 2 == 0).map(|k| (k, k * 10)).collect())
            })
        }
    }

    #[rocket::async_test]
    async fn one_look_up_alone_makes_one_trip_with_its_key() {
        let coalescer = Coalescer::<u32, u32, String>::new(64);
        let trips = Trips::default();
        assert_eq!(coalescer.get(4, recording(&trips)).await.unwrap(), Some(40));
        assert_eq!(coalescer.get(3, recording(&trips)).await.unwrap(), None);
        assert_eq!(*trips.lock().unwrap(), vec![vec![4], vec![3]]);
    }

    #[rocket::async_test]
    async fn look_ups_made_during_a_trip_share_the_next_one() {
        let coalescer = Arc::new(Coalescer::<u32, u32, String>::new(64));
        let trips = Trips::default();
        let mut callers = Vec::new();
        for key in 0..20u32 {
            let (coalescer, fetch) = (coalescer.clone(), recording(&trips));
            callers.push(tokio::spawn(async move { (key, coalescer.get(key, fetch).await) }));
            if key == 0 {
                // Let the first trip start, so the other 19 arrive while it runs.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        for caller in callers {
            let (key, answer) = caller.await.unwrap();
            assert_eq!(answer.unwrap(), (key % 2 == 0).then_some(key * 10), "key {key}");
        }
        let trips = trips.lock().unwrap();
        assert_eq!(trips.len(), 2, "one trip for the first, one for the rest: {trips:?}");
        assert_eq!(trips[1].len(), 19);
    }

    #[rocket::async_test]
    async fn a_trip_carries_at_most_max_batch_keys_and_each_key_once() {
        let coalescer = Arc::new(Coalescer::<u32, u32, String>::new(4));
        let trips = Trips::default();
        let mut callers = Vec::new();
        for key in [0, 1, 2, 2, 2, 3, 4, 5, 6, 7] {
            let (coalescer, fetch) = (coalescer.clone(), recording(&trips));
            callers.push(tokio::spawn(async move { (key, coalescer.get(key, fetch).await) }));
        }
        for caller in callers {
            let (key, answer) = caller.await.unwrap();
            assert_eq!(answer.unwrap(), (key % 2 == 0).then_some(key * 10), "key {key}");
        }
        let trips = trips.lock().unwrap();
        assert!(trips.iter().all(|trip| trip.len() <= 4), "{trips:?}");
        for trip in trips.iter() {
            let mut distinct = trip.clone();
            distinct.dedup();
            assert_eq!(&distinct, trip, "a key twice in one trip");
        }
        let asked: usize = trips.iter().map(Vec::len).sum();
        assert!(asked < 10, "the three asks for key 2 did not share a trip: {trips:?}");
    }

    /// A fetch whose first call does `first` (fails or panics) after 10 ms, and whose later calls
    /// find every key (value key * 10).
    fn first_call_then_finds_all(
        first: fn() -> Found,
    ) -> impl Fn(Vec<u32>) -> BoxFuture<'static, Found> + Clone + Send + 'static {
        let calls = Arc::new(AtomicUsize::new(0));
        move |keys: Vec<u32>| {
            let first_call = calls.fetch_add(1, Ordering::SeqCst) == 0;
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if first_call {
                    return first();
                }
                Ok(keys.into_iter().map(|k| (k, k * 10)).collect())
            })
        }
    }

    #[rocket::async_test]
    async fn a_failed_trip_fails_every_look_up_on_it_and_the_next_trip_runs() {
        let coalescer = Coalescer::<u32, u32, String>::new(64);
        let fetch = first_call_then_finds_all(|| Err("database down".to_owned()));
        let first = coalescer.get(1, fetch.clone()).await;
        assert!(matches!(first, Err(CoalesceError::Failed(ref e)) if e.as_str() == "database down"));
        assert_eq!(coalescer.get(1, fetch).await.unwrap(), Some(10));
    }

    #[rocket::async_test]
    async fn a_panicking_trip_reports_the_panic_and_the_next_look_up_is_served() {
        let coalescer = Coalescer::<u32, u32, String>::new(64);
        let fetch = first_call_then_finds_all(|| panic!("a bug in the fetch"));
        assert!(matches!(coalescer.get(1, fetch.clone()).await, Err(CoalesceError::Panicked)));
        let answer = tokio::time::timeout(Duration::from_secs(2), coalescer.get(2, fetch)).await;
        assert_eq!(answer.expect("not stuck behind the task that panicked").unwrap(), Some(20));
    }
}
