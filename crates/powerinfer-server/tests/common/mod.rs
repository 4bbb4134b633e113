//! What the server's tests and its load example share.
#![allow(dead_code)]

pub mod client;
