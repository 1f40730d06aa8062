//! strata-benches: criterion benchmarks across Strata's crates. The benches
//! live in `benches/`; this library only holds what they share.
