//! TokenOne's domain: everything that is true whatever the transport or the database.
//! Depends on neither axum nor sqlx; the server and the store depend on it.

pub mod admin;
pub mod catalogue;
pub mod cold;
pub mod config;
pub mod connectors;
pub mod economics;
pub mod error;
pub mod events;
pub mod export;
pub mod ids;
pub mod keys;
pub mod model;
pub mod repo;
pub mod roles;
pub mod routing;
pub mod secret;
pub mod services;
pub mod settings;
pub mod tiers;
pub mod time;
pub mod tokens;
pub mod validate;
pub mod vault;
pub mod workspace;

pub use error::{Error, Result};
