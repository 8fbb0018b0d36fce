//! Counts the calls of profundo's own flex kernels ([`crate::pool`], [`crate::norm`]) on the
//! calling thread, in tests only: their outputs can equal Burn's to the bit, so only a count
//! tells a routed layer from a silent fallback to Burn's operation.

#[cfg(test)]
thread_local! {
    static CALLS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Records one kernel call (a no-op outside tests).
pub(crate) fn record() {
    #[cfg(test)]
    CALLS.with(|c| c.set(c.get() + 1));
}

/// Kernel calls on this thread so far.
#[cfg(test)]
pub(crate) fn count() -> usize {
    CALLS.with(|c| c.get())
}
