//! Integration tests: the real server on port 0, over HTTP, on SQLite and on PostgreSQL.

mod cli;
mod openapi;
mod auth;
mod smoke;
