//! `tribune-auth`: an auth-callout service for NATS servers (nats-server, and
//! tribune-broker once it speaks auth callout).
//!
//! Web users connect with a token issued by the company's identity provider.
//! The NATS server forwards every such CONNECT to `$SYS.REQ.USER.AUTH` as a
//! signed `authorization_request` JWT; this service validates the web token,
//! maps its claims to subscribe-only permissions and answers with a signed
//! `authorization_response` carrying a user JWT (or an error).
//!
//! The binary (`main.rs`) only wires these modules together; everything that
//! decides anything lives in the library so it can be unit-tested.

pub mod callout;
pub mod config;
pub mod jwt;
pub mod metrics;
pub mod permissions;
pub mod service;
pub mod token;
