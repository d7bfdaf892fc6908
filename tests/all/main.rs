//! End-to-end tests: one binary (wasmtime is linked once), one module per area.

mod audit;
mod cache;
mod cli;
mod fuzz;
mod gateway;
mod hostile;
mod languages;
mod lifecycle;
mod observe;
mod pipeline;
mod registry;
mod scaffold;
mod signing;
mod support;
