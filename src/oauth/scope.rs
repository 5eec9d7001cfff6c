//! OAuth scopes: the transitional ones (`transition:generic`, `transition:chat.bsky`,
//! `transition:email`) and the granular permissions of https://atproto.com/specs/permission
//! (`repo:`, `blob:`, `rpc:`, `account:`, `identity:`), parsed once per token into
//! [`Permissions`], and the question every method asks of them, [`Permissions::allows`].
//!
//! `transition:generic` grants, as in the reference PDS, every record and blob and every service
//! call but direct messages (which `transition:chat.bsky` adds); no account or identity
//! management, which take `account:` and `identity:` scopes. Permission sets (`include:`) are
//! not served.

use crate::syntax::Nsid;

/// A record write's kind, as `repo:` scopes name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoAction {
    /// A new record.
    Create,
    /// A changed record.
    Update,
    /// A removed record.
    Delete,
}

impl RepoAction {
    const ALL: [RepoAction; 3] = [RepoAction::Create, RepoAction::Update, RepoAction::Delete];

    fn parse(s: &str) -> Option<RepoAction> {
        match s {
            "create" => Some(RepoAction::Create),
            "update" => Some(RepoAction::Update),
            "delete" => Some(RepoAction::Delete),
            _ => None,
        }
    }

    /// The name in a scope.
    pub fn as_str(self) -> &'static str {
        match self {
            RepoAction::Create => "create",
            RepoAction::Update => "update",
            RepoAction::Delete => "delete",
        }
    }
}

/// What a method needs of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission<'a> {
    /// Writing a record of `collection`.
    Repo {
        /// The record's collection NSID.
        collection: &'a str,
        /// The kind of write.
        action: RepoAction,
    },
    /// Uploading a blob of this MIME type.
    Blob {
        /// The blob's MIME type.
        mime: &'a str,
    },
    /// Calling `lxm` on the service `aud` (`did#service`) in the account's name.
    Rpc {
        /// The method.
        lxm: &'a str,
        /// The service.
        aud: &'a str,
    },
    /// Reading (`manage` false) or changing an account attribute: `email`, `repo`, `status`.
    Account {
        /// The attribute.
        attr: &'a str,
        /// Whether it is changed, not only read.
        manage: bool,
    },
    /// Changing an identity attribute: `handle`, or `*` (the DID document, PLC operations).
    Identity {
        /// The attribute.
        attr: &'a str,
    },
}

impl Permission<'_> {
    /// The scope that would grant this, for the refusal's description.
    pub fn scope(&self) -> String {
        match self {
            Permission::Repo { collection, action } => {
                format!("repo:{collection}?action={}", action.as_str())
            }
            Permission::Blob { mime } => format!("blob:{mime}"),
            Permission::Rpc { lxm, aud } => format!("rpc:{lxm}?aud={}", aud.replace('#', "%23")),
            Permission::Account { attr, manage } => {
                format!(
                    "account:{attr}?action={}",
                    if *manage { "manage" } else { "read" }
                )
            }
            Permission::Identity { attr } => format!("identity:{attr}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RepoGrant {
    collections: Vec<String>,
    actions: Vec<RepoAction>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RpcGrant {
    methods: Vec<String>,
    aud: String,
}

/// The permissions one token's scopes grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    generic: bool,
    chat: bool,
    email: bool,
    repo: Vec<RepoGrant>,
    blob: Vec<String>,
    rpc: Vec<RpcGrant>,
    account: Vec<(String, bool)>,
    identity: Vec<String>,
}

const ACCOUNT_ATTRS: [&str; 3] = ["email", "repo", "status"];
const IDENTITY_ATTRS: [&str; 2] = ["handle", "*"];

/// A scope split into its resource, positional value and parameters (decoded once).
struct Parts<'a> {
    resource: &'a str,
    positional: Option<String>,
    params: Vec<(String, String)>,
}

fn split(scope: &str) -> Result<Parts<'_>, String> {
    let (head, query) = match scope.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (scope, None),
    };
    let (resource, positional) = match head.split_once(':') {
        Some((r, p)) => {
            let decoded = percent_decode(p).ok_or_else(|| format!("{scope}: bad escape"))?;
            if decoded.is_empty() {
                return Err(format!("{scope}: empty value after the colon"));
            }
            (r, Some(decoded))
        }
        None => (head, None),
    };
    let params = query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    Ok(Parts {
        resource,
        positional,
        params,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(s).collect();
    String::from_utf8(bytes).ok()
}

impl Parts<'_> {
    /// The values of `name`: the positional value, or the named parameter (not both).
    fn values(&self, name: &str, scope: &str) -> Result<Vec<String>, String> {
        let named: Vec<String> = self
            .params
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect();
        match (&self.positional, named.is_empty()) {
            (Some(_), false) => Err(format!("{scope}: {name} given twice")),
            (Some(p), true) => Ok(vec![p.clone()]),
            (None, _) => Ok(named),
        }
    }

    fn only(&self, allowed: &[&str], scope: &str) -> Result<(), String> {
        match self
            .params
            .iter()
            .find(|(k, _)| !allowed.contains(&k.as_str()))
        {
            Some((k, _)) => Err(format!("{scope}: unknown parameter {k}")),
            None => Ok(()),
        }
    }
}

fn is_nsid_or_star(s: &str) -> bool {
    s == "*" || Nsid::parse(s).is_ok()
}

fn is_mime_pattern(s: &str) -> bool {
    match s.split_once('/') {
        Some(("*", "*")) => true,
        Some((kind, sub)) => {
            let token = |t: &str| {
                !t.is_empty()
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
            };
            token(kind) && (sub == "*" || token(sub))
        }
        None => false,
    }
}

/// Whether `aud` names a service: `did:…#id`.
fn is_service_ref(aud: &str) -> bool {
    match aud.split_once('#') {
        Some((did, id)) => crate::syntax::Did::parse(did).is_ok() && !id.is_empty(),
        None => false,
    }
}

impl Permissions {
    /// The permissions of a space-separated scope string. A scope this server does not know, or
    /// a malformed one, is an error naming it (`invalid_scope` when a client asks for it).
    pub fn parse(scopes: &str) -> Result<Permissions, String> {
        let mut p = Permissions::default();
        for scope in scopes.split(' ').filter(|s| !s.is_empty()) {
            p.add(scope)?;
        }
        Ok(p)
    }

    /// The permissions a token's `scopes` grant: those this server knows (the flow refused
    /// the others when they were asked for; any left grant nothing).
    pub fn granted(scopes: &str) -> Permissions {
        let mut p = Permissions::default();
        for scope in scopes.split(' ').filter(|s| !s.is_empty()) {
            // A scope this server does not know (or no longer knows) is skipped, not fatal.
            let _ = p.add(scope);
        }
        p
    }

    fn add(&mut self, scope: &str) -> Result<(), String> {
        match scope {
            "atproto" => return Ok(()),
            "transition:generic" => {
                self.generic = true;
                return Ok(());
            }
            "transition:chat.bsky" => {
                self.chat = true;
                return Ok(());
            }
            "transition:email" => {
                self.email = true;
                return Ok(());
            }
            _ => {}
        }
        let parts = split(scope)?;
        match parts.resource {
            "repo" => {
                parts.only(&["collection", "action"], scope)?;
                let collections = parts.values("collection", scope)?;
                if collections.is_empty() || !collections.iter().all(|c| is_nsid_or_star(c)) {
                    return Err(format!("{scope}: collection must be an NSID or *"));
                }
                let named: Vec<&str> = parts
                    .params
                    .iter()
                    .filter(|(k, _)| k == "action")
                    .map(|(_, v)| v.as_str())
                    .collect();
                let actions = if named.is_empty() {
                    RepoAction::ALL.to_vec()
                } else {
                    named
                        .iter()
                        .map(|a| {
                            RepoAction::parse(a)
                                .ok_or_else(|| format!("{scope}: unknown action {a}"))
                        })
                        .collect::<Result<_, _>>()?
                };
                self.repo.push(RepoGrant {
                    collections,
                    actions,
                });
            }
            "blob" => {
                parts.only(&["accept"], scope)?;
                let accept = parts.values("accept", scope)?;
                if accept.is_empty() || !accept.iter().all(|m| is_mime_pattern(m)) {
                    return Err(format!("{scope}: accept must be MIME types or patterns"));
                }
                self.blob.extend(accept);
            }
            "rpc" => {
                parts.only(&["lxm", "aud"], scope)?;
                let methods = parts.values("lxm", scope)?;
                if methods.is_empty() || !methods.iter().all(|m| is_nsid_or_star(m)) {
                    return Err(format!("{scope}: lxm must be an NSID or *"));
                }
                let aud: Vec<&String> = parts
                    .params
                    .iter()
                    .filter(|(k, _)| k == "aud")
                    .map(|(_, v)| v)
                    .collect();
                let [aud] = aud.as_slice() else {
                    return Err(format!("{scope}: exactly one aud is required"));
                };
                if aud.as_str() != "*" && !is_service_ref(aud) {
                    return Err(format!("{scope}: aud must be did#service or *"));
                }
                if aud.as_str() == "*" && methods.iter().any(|m| m == "*") {
                    return Err(format!(
                        "{scope}: any method at any service is not grantable"
                    ));
                }
                self.rpc.push(RpcGrant {
                    methods,
                    aud: aud.to_string(),
                });
            }
            "account" => {
                parts.only(&["attr", "action"], scope)?;
                let attrs = parts.values("attr", scope)?;
                let [attr] = attrs.as_slice() else {
                    return Err(format!("{scope}: exactly one attr is required"));
                };
                if !ACCOUNT_ATTRS.contains(&attr.as_str()) {
                    return Err(format!("{scope}: unknown account attribute {attr}"));
                }
                let manage = match parts.params.iter().find(|(k, _)| k == "action") {
                    None => false,
                    Some((_, a)) if a == "read" => false,
                    Some((_, a)) if a == "manage" => true,
                    Some((_, a)) => return Err(format!("{scope}: unknown action {a}")),
                };
                self.account.push((attr.clone(), manage));
            }
            "identity" => {
                parts.only(&["attr"], scope)?;
                let attrs = parts.values("attr", scope)?;
                let [attr] = attrs.as_slice() else {
                    return Err(format!("{scope}: exactly one attr is required"));
                };
                if !IDENTITY_ATTRS.contains(&attr.as_str()) {
                    return Err(format!("{scope}: unknown identity attribute {attr}"));
                }
                self.identity.push(attr.clone());
            }
            _ => return Err(format!("{scope}: not a scope this server grants")),
        }
        Ok(())
    }

    /// Whether `transition:chat.bsky` was granted.
    pub fn has_chat(&self) -> bool {
        self.chat
    }

    /// Whether these permissions grant `wanted`.
    pub fn allows(&self, wanted: &Permission<'_>) -> bool {
        match *wanted {
            Permission::Repo { collection, action } => {
                self.generic
                    || self.repo.iter().any(|g| {
                        g.actions.contains(&action)
                            && g.collections.iter().any(|c| c == "*" || c == collection)
                    })
            }
            Permission::Blob { mime } => {
                self.generic || self.blob.iter().any(|pattern| mime_matches(pattern, mime))
            }
            Permission::Rpc { lxm, aud } => {
                let chat = lxm.starts_with("chat.bsky.");
                (self.generic && !chat)
                    || (self.chat && chat)
                    || self.rpc.iter().any(|g| {
                        (g.aud == "*" || g.aud == aud)
                            && g.methods.iter().any(|m| m == "*" || m == lxm)
                    })
            }
            Permission::Account { attr, manage } => {
                (attr == "email" && !manage && self.email)
                    || self
                        .account
                        .iter()
                        .any(|(a, m)| a == attr && (*m || !manage))
            }
            Permission::Identity { attr } => self.identity.iter().any(|a| a == "*" || a == attr),
        }
    }
}

fn mime_matches(pattern: &str, mime: &str) -> bool {
    let mime = mime.to_ascii_lowercase();
    match pattern.split_once('/') {
        Some(("*", "*")) => true,
        Some((kind, "*")) => mime.split_once('/').is_some_and(|(k, _)| k == kind),
        _ => pattern.eq_ignore_ascii_case(&mime),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(scopes: &str, p: Permission<'_>) -> bool {
        Permissions::parse(scopes).unwrap().allows(&p)
    }

    const POST: &str = "app.bsky.feed.post";
    const APPVIEW: &str = "did:web:api.bsky.app#bsky_appview";

    #[test]
    fn repo_scopes_grant_their_collections_and_actions() {
        let create = Permission::Repo {
            collection: POST,
            action: RepoAction::Create,
        };
        let delete = Permission::Repo {
            collection: POST,
            action: RepoAction::Delete,
        };
        let like = Permission::Repo {
            collection: "app.bsky.feed.like",
            action: RepoAction::Create,
        };
        assert!(allows("atproto repo:app.bsky.feed.post", create));
        assert!(allows("repo:app.bsky.feed.post", delete));
        assert!(!allows("repo:app.bsky.feed.post", like));
        assert!(allows("repo:app.bsky.feed.post?action=create", create));
        assert!(!allows("repo:app.bsky.feed.post?action=create", delete));
        assert!(allows(
            "repo?collection=app.bsky.feed.like&collection=app.bsky.feed.post",
            like
        ));
        assert!(allows("repo:*?action=delete", delete));
        assert!(allows("transition:generic", like));
        assert!(!allows("atproto", like));
    }

    #[test]
    fn rpc_scopes_name_a_method_and_a_service() {
        let timeline = Permission::Rpc {
            lxm: "app.bsky.feed.getTimeline",
            aud: APPVIEW,
        };
        let chat = Permission::Rpc {
            lxm: "chat.bsky.convo.listConvos",
            aud: "did:web:api.bsky.chat#bsky_chat",
        };
        assert!(allows(
            "rpc:app.bsky.feed.getTimeline?aud=did:web:api.bsky.app%23bsky_appview",
            timeline
        ));
        assert!(allows(
            "rpc:*?aud=did:web:api.bsky.app%23bsky_appview",
            timeline
        ));
        assert!(allows("rpc:app.bsky.feed.getTimeline?aud=*", timeline));
        assert!(!allows(
            "rpc:app.bsky.feed.getTimeline?aud=did:web:other.example%23bsky_appview",
            timeline
        ));
        assert!(allows("transition:generic", timeline));
        assert!(
            !allows("transition:generic", chat),
            "direct messages need their own scope"
        );
        assert!(allows("transition:generic transition:chat.bsky", chat));
    }

    #[test]
    fn blob_account_and_identity_scopes() {
        assert!(allows(
            "blob:image/*",
            Permission::Blob { mime: "image/png" }
        ));
        assert!(!allows(
            "blob:image/*",
            Permission::Blob { mime: "video/mp4" }
        ));
        assert!(allows(
            "blob?accept=video/mp4&accept=image/png",
            Permission::Blob { mime: "video/mp4" }
        ));
        assert!(allows(
            "blob:*/*",
            Permission::Blob {
                mime: "application/pdf"
            }
        ));
        let read_email = Permission::Account {
            attr: "email",
            manage: false,
        };
        let change_email = Permission::Account {
            attr: "email",
            manage: true,
        };
        assert!(allows("account:email", read_email));
        assert!(!allows("account:email", change_email));
        assert!(allows("account:email?action=manage", change_email));
        assert!(allows("account:email?action=manage", read_email));
        assert!(allows("transition:email", read_email));
        assert!(!allows("transition:generic", change_email));
        assert!(!allows("transition:generic", read_email));
        assert!(allows(
            "identity:handle",
            Permission::Identity { attr: "handle" }
        ));
        assert!(allows("identity:*", Permission::Identity { attr: "*" }));
        assert!(!allows(
            "identity:handle",
            Permission::Identity { attr: "*" }
        ));
        assert!(!allows(
            "transition:generic",
            Permission::Identity { attr: "handle" }
        ));
        assert!(!allows(
            "transition:generic",
            Permission::Identity { attr: "*" }
        ));
    }

    #[test]
    fn malformed_and_unknown_scopes_are_named() {
        for bad in [
            "repo:not-an-nsid",
            "repo:app.bsky.*",
            "repo:app.bsky.feed.post?collection=app.bsky.feed.like",
            "repo:app.bsky.feed.post?action=publish",
            "repo:app.bsky.feed.post?color=red",
            "repo:",
            "rpc:app.bsky.feed.getTimeline",
            "rpc:*?aud=*",
            "rpc:app.bsky.feed.getTimeline?aud=did:web:api.bsky.app",
            "rpc:app.bsky.feed.getTimeline?aud=*&aud=did:web:x.example%23y",
            "blob:image",
            "account:password",
            "account:email?action=delete",
            "identity:did",
            "include:app.bsky.authFullApp",
            "transition:everything",
            "openid",
        ] {
            assert!(Permissions::parse(bad).is_err(), "{bad} refused");
        }
    }

    #[test]
    fn a_refusal_names_the_scope_that_would_grant_it() {
        let p = Permission::Rpc {
            lxm: "app.bsky.feed.getTimeline",
            aud: APPVIEW,
        };
        assert_eq!(
            p.scope(),
            "rpc:app.bsky.feed.getTimeline?aud=did:web:api.bsky.app%23bsky_appview"
        );
        let granted = Permissions::parse(&p.scope()).unwrap();
        assert!(granted.allows(&p), "the named scope grants it");
    }
}
