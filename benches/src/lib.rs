//! Ilion's benchmarks.
//!
//! Engine workloads measured side by side with peer engines live here, behind
//! features so that the default build never compiles the peers. See
//! `benches/README.md` for how to run them and the latest figures.
