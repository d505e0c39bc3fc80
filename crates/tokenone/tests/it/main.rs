//! Integration tests: the real server on port 0, over HTTP, on SQLite and on PostgreSQL.

mod admin;
mod auth;
mod cli;
mod connectors;
mod crash;
mod money;
mod openapi;
mod projects;
mod proxy;
mod replicas;
mod routing;
mod sdk;
mod smoke;
mod sse;
mod workspace;
