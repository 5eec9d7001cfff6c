//! What a deployment definition gives the binaries, read out of the CDK template or the
//! Terraform module into one shape: each component's environment and secrets, how each secret is
//! generated, where each path is routed, and the settings the two stacks must agree on.

use std::collections::BTreeMap;

/// A value in a component's environment, with the cloud's parts left symbolic until the
/// rehearsal's world supplies them.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Lit(String),
    /// The ARN of the secret with this id.
    SecretArn(String),
    /// The blob bucket's name.
    Bucket,
    /// The name of the table with this suffix.
    Table(String),
    Concat(Vec<Val>),
}

impl Val {
    /// The literal text, if the value is one.
    pub fn lit(&self) -> Option<&str> {
        match self {
            Val::Lit(s) => Some(s),
            _ => None,
        }
    }
}

/// How a secret's value is generated, as the template or module says.
#[derive(Debug, Clone, PartialEq)]
pub enum Gen {
    /// Random characters from `charset`, with at least one of each class (Secrets Manager's
    /// `RequireEachIncludedType`, Terraform's `min_*`).
    Password {
        length: usize,
        charset: String,
        classes: Vec<String>,
    },
    /// Random bytes, written as `encoding` (`hex`, `b64_std`).
    Bytes {
        length: usize,
        encoding: String,
    },
    /// A JSON object from `template` with `key` set to the generated value (Secrets Manager's
    /// `SecretStringTemplate` + `GenerateStringKey`).
    Template {
        template: serde_json::Map<String, serde_json::Value>,
        key: String,
        value: Box<Gen>,
    },
    Concat(Vec<Gen>),
    Lit(String),
}

/// A process the deployment runs.
#[derive(Debug, Clone, Default)]
pub struct Component {
    pub env: BTreeMap<String, Val>,
    /// Environment variable → secret id (ECS injects the value).
    pub secrets: BTreeMap<String, String>,
    pub command: Vec<String>,
    pub port: Option<u16>,
}

/// What a deployment definition gives the binaries.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub source: &'static str,
    pub lambda: Component,
    /// The task's containers by name.
    pub containers: BTreeMap<String, Component>,
    pub secrets: BTreeMap<String, Gen>,
    /// Path pattern → component (`lambda`, or a container's name); the default is last, `*`.
    pub routes: Vec<(String, String)>,
    /// Settings the two stacks must agree on, by name.
    pub facts: BTreeMap<String, String>,
}

impl Spec {
    /// The component that serves `path`.
    pub fn route(&self, path: &str) -> &str {
        self.routes
            .iter()
            .find(|(pattern, _)| pattern == path || pattern == "*")
            .map(|(_, c)| c.as_str())
            .unwrap_or("lambda")
    }
}

/// Secrets Manager's character classes (and Terraform random_password's), in its order.
pub const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
pub const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
pub const DIGITS: &str = "0123456789";
pub const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// A password charset and its classes from which classes are included, less `exclude`.
pub fn charset(classes: &[&str], exclude: &str) -> (String, Vec<String>) {
    let kept: Vec<String> = classes
        .iter()
        .map(|c| {
            c.chars()
                .filter(|ch| !exclude.contains(*ch))
                .collect::<String>()
        })
        .filter(|c| !c.is_empty())
        .collect();
    (kept.concat(), kept)
}

/// Generates a value as `how` says.
pub fn generate(how: &Gen) -> String {
    use base64::Engine;
    match how {
        Gen::Password {
            length,
            charset,
            classes,
        } => loop {
            let chars: Vec<char> = charset.chars().collect();
            let value: String = (0..*length)
                .map(|_| chars[rand::random::<usize>() % chars.len()])
                .collect();
            if classes
                .iter()
                .all(|class| value.chars().any(|c| class.contains(c)))
            {
                break value;
            }
        },
        Gen::Bytes { length, encoding } => {
            let bytes: Vec<u8> = (0..*length).map(|_| rand::random::<u8>()).collect();
            match encoding.as_str() {
                "hex" => hex::encode(bytes),
                "b64_std" => base64::engine::general_purpose::STANDARD.encode(bytes),
                other => panic!("no rehearsal for random_id encoding {other}"),
            }
        }
        Gen::Template {
            template,
            key,
            value,
        } => {
            let mut object = template.clone();
            object.insert(key.clone(), serde_json::Value::String(generate(value)));
            serde_json::Value::Object(object).to_string()
        }
        Gen::Concat(parts) => parts.iter().map(generate).collect(),
        Gen::Lit(s) => s.clone(),
    }
}
