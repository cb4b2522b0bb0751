//! Running per-model work on a few threads, synchronously.
//!
//! Scoped threads pull the next item from a shared counter; results come back in input
//! order. No async runtime: a download is a blocking loop, and a handful of threads is
//! all a checkpoint fetch needs.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Models worked on at once when `--jobs` is not given.
pub(crate) const DEFAULT_JOBS: usize = 4;

/// `f` over `items` on up to `jobs` threads; the results keep the order of `items`.
pub(crate) fn map<T, R, F>(items: &[T], jobs: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let jobs = jobs.clamp(1, items.len().max(1));
    if jobs == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    let result = f(item);
                    if let Ok(mut results) = results.lock() {
                        results[i] = Some(result);
                    }
                }
            });
        }
    });
    results.into_inner().unwrap_or_default().into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_input_order_and_work_runs_concurrently() {
        let items: Vec<u64> = (0..50).collect();
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let out = map(&items, 4, |&x| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            x * 2
        });
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert!(most.load(Ordering::SeqCst) > 1);
        assert_eq!(map(&[] as &[u8], 4, |_| 0), Vec::<i32>::new());
    }
}
