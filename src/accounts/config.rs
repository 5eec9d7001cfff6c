//! [`AccountsConfig`]: the rules account flows follow, taken from the server's configuration.

use crate::crypto::Keypair;

/// What account flows need to know about this PDS.
#[derive(Clone)]
pub struct AccountsConfig {
    /// Domains under which handles may be created, each starting with a dot.
    pub handle_domains: Vec<String>,
    /// Whether a new account needs an invite code.
    pub invite_required: bool,
    /// This PDS's public URL: the service endpoint written into new DID documents.
    pub public_url: String,
    /// The hostname, which invite codes start with.
    pub hostname: String,
    /// The operator's PLC rotation key, listed last in every new DID's `rotationKeys`.
    pub plc_rotation_key: Option<Keypair>,
}

impl std::fmt::Debug for AccountsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountsConfig")
            .field("handle_domains", &self.handle_domains)
            .field("invite_required", &self.invite_required)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl AccountsConfig {
    /// Whether `handle` is under one of this PDS's handle domains.
    pub fn is_service_handle(&self, handle: &str) -> bool {
        self.handle_domains
            .iter()
            .any(|d| handle.ends_with(d.as_str()))
    }
}
