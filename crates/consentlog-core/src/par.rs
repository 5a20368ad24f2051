//! Data parallelism, on all cores with the `parallel` feature (rayon) and in order on one
//! thread without it (wasm32, embedders that bring their own threads). Results are the same
//! either way; only the time differs.

/// `f` applied to consecutive parts of at most `size` items of `items`, the results
/// concatenated in the order of the parts.
pub fn map_parts<T, R, F>(items: Vec<T>, size: usize, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(Vec<T>) -> Vec<R> + Sync + Send,
{
    assert!(size > 0, "parts hold at least one item");
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        items
            .into_par_iter()
            .chunks(size)
            .flat_map_iter(f)
            .collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        let mut out = Vec::with_capacity(items.len());
        let mut rest = items.into_iter().peekable();
        while rest.peek().is_some() {
            out.extend(f(rest.by_ref().take(size).collect()));
        }
        out
    }
}

/// `(item, f(item))` for every item, collected into `C`.
pub fn map_each<T, R, F, C>(items: impl IntoIterator<Item = T>, f: F) -> C
where
    T: Send,
    R: Send,
    F: Fn(&T) -> R + Sync + Send,
    C: FromIterator<(T, R)>,
{
    let items: Vec<T> = items.into_iter().collect();
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        let results: Vec<(T, R)> = items
            .into_par_iter()
            .map(|t| {
                let r = f(&t);
                (t, r)
            })
            .collect();
        results.into_iter().collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        items
            .into_iter()
            .map(|t| {
                let r = f(&t);
                (t, r)
            })
            .collect()
    }
}

/// `(a(), b())`: on two threads when one is free, with the `parallel` feature.
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    #[cfg(feature = "parallel")]
    {
        rayon::join(a, b)
    }
    #[cfg(not(feature = "parallel"))]
    {
        (a(), b())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn parts_keep_order_and_cover_everything() {
        for n in [0usize, 1, 2, 63, 64, 65, 200] {
            let v: Vec<usize> = (0..n).collect();
            let out = map_parts(v.clone(), 64, |p| {
                assert!(!p.is_empty() && p.len() <= 64);
                p.into_iter().map(|x| x * 2).collect()
            });
            assert_eq!(out, v.iter().map(|x| x * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn each_pairs_items_with_results() {
        let m: HashMap<u32, u32> = map_each(0..100u32, |x| x + 1);
        assert_eq!(m.len(), 100);
        assert!(m.iter().all(|(k, v)| *v == k + 1));
    }
}
