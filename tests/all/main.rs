//! End-to-end tests: one binary (wasmtime is linked once), one module per area.

mod cli;
mod hostile;
mod pipeline;
mod support;
