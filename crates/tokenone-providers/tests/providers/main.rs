//! Integration tests of tokenone-providers through its public API.

mod common;
mod errors;
mod features;
mod requests;
mod responses;
mod sandbox;
mod sse;
mod streaming;
mod usage;
