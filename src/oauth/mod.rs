//! The atproto OAuth profile (https://atproto.com/specs/oauth), both halves a PDS plays: the
//! authorization server (client metadata, pushed authorization requests, codes, tokens, their
//! state in the key-value store) and the resource server's check of a DPoP-bound access token.
//! HTTP (the endpoints, the sign-in page, the error bodies) is `crate::xrpc::oauth`; checking
//! passwords is `crate::accounts`.
//!
//! What is served today is written down in `docs/oauth.md`: public clients (loopback and
//! `client_id` metadata documents), PAR, PKCE S256, DPoP (ES256) with server nonces, the
//! `authorization_code` and `refresh_token` grants and revocation; the scopes `atproto`,
//! `transition:generic` and `transition:chat.bsky`.

pub mod client;
pub mod dpop;
mod error;
pub mod flow;
pub mod scope;

pub use client::{ClientMetadata, ClientResolver};
pub use dpop::{DpopProof, Nonces};
pub use error::OAuthError;
pub use flow::{AccessClaims, AuthorizationServer, PushedRequest, TokenSet};
pub use scope::{Permission, Permissions, RepoAction};
