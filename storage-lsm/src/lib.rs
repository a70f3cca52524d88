//! Ilion's per-node storage engine.
