//! The atproto OAuth profile (https://atproto.com/specs/oauth), both halves a PDS plays: the
//! authorization server (client metadata, pushed authorization requests, codes, tokens, their
//! state in the key-value store) and the resource server's check of a DPoP-bound access token.
//! HTTP (the endpoints, the sign-in page, the error bodies) is `crate::xrpc::oauth`; checking
//! passwords is `crate::accounts`.
//!
//! `docs/oauth.md` writes down what is served: public and confidential (`private_key_jwt`)
//! clients, loopback or by metadata document ([`client`]); PAR, PKCE S256, codes, rotating
//! refresh tokens, revocation, remembered browsers and consents ([`flow`]); DPoP (ES256) with
//! server nonces ([`dpop`]); the transitional and granular permission scopes ([`scope`]).

pub mod client;
pub mod dpop;
mod error;
pub mod flow;
pub mod scope;

pub use client::{ClientMetadata, ClientResolver};
pub use dpop::{DpopProof, Nonces};
pub use error::OAuthError;
pub use flow::{AccessClaims, Answer, AuthorizationServer, PushedRequest, Refusal, TokenSet};
pub use scope::{Permission, Permissions, RepoAction};
