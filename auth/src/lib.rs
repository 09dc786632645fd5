//! `tribune-auth`: an auth-callout service for NATS servers (nats-server and
//! tribune-broker alike).
//!
//! Web users connect with a token issued by the company's identity provider.
//! The NATS server forwards every such CONNECT to `$SYS.REQ.USER.AUTH` as a
//! signed `authorization_request` JWT; this service validates the web token,
//! maps its claims to read-only permissions and answers with a signed
//! `authorization_response` carrying a user JWT (or an error).
//!
//! The binary (`main.rs`) only wires these modules together; everything that
//! decides anything lives in the library so it can be unit-tested.

#[cfg(feature = "service")]
pub mod apps;
#[cfg(feature = "service")]
pub mod callout;
#[cfg(feature = "service")]
pub mod config;
#[cfg(feature = "service")]
pub mod idp_url;
#[cfg(feature = "service")]
pub mod jwks;
pub mod jwt;
#[cfg(feature = "service")]
pub mod metrics;
#[cfg(feature = "service")]
pub mod permissions;
#[cfg(feature = "service")]
pub mod reload;
#[cfg(feature = "service")]
pub mod service;
#[cfg(feature = "service")]
pub mod subjects;
#[cfg(feature = "web-token")]
pub mod token;
