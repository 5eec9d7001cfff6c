//! Reading a [`Spec`] out of the synthesized CDK template (`infra/cdk/cdk.out`, written by
//! `make infra-test`, which `make test` runs before the Rust tests).

use std::collections::BTreeMap;

use serde_json::Value;

use super::spec::{Component, DIGITS, Gen, LOWER, PUNCTUATION, Spec, UPPER, Val, charset};

/// The template `make infra-test` synthesizes (with `hostname=pds.rehearsal.test`).
pub fn template() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/infra/cdk/cdk.out/Arroba.template.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!("{path} is missing: `make infra-test` synthesizes it (`make test` runs it first)")
    });
    serde_json::from_str(&text).unwrap()
}

struct Template<'a> {
    resources: &'a serde_json::Map<String, Value>,
    tables: Vec<String>,
}

impl Template<'_> {
    fn of_type(&self, kind: &str) -> Vec<(&String, &Value)> {
        self.resources
            .iter()
            .filter(|(_, r)| r["Type"] == kind)
            .collect()
    }

    fn one(&self, kind: &str) -> &Value {
        let found = self.of_type(kind);
        assert_eq!(found.len(), 1, "one {kind}");
        &found[0].1["Properties"]
    }

    /// The table suffix a logical id belongs to (`Tablerepos…` → `repos`).
    fn table_suffix(&self, id: &str) -> Option<String> {
        self.tables
            .iter()
            .find(|s| id.starts_with(&format!("Table{}", s.replace('-', ""))))
            .cloned()
    }

    fn reference(&self, id: &str) -> Val {
        let kind = self.resources[id]["Type"].as_str().unwrap_or_default();
        match kind {
            "AWS::SecretsManager::Secret" => Val::SecretArn(id.to_owned()),
            "AWS::S3::Bucket" if id.starts_with("Blobs") => Val::Bucket,
            "AWS::DynamoDB::Table" => Val::Table(self.table_suffix(id).unwrap()),
            other => panic!("no rehearsal for a reference to {id} ({other})"),
        }
    }

    fn val(&self, v: &Value) -> Val {
        match v {
            Value::String(s) => Val::Lit(s.clone()),
            Value::Number(n) => Val::Lit(n.to_string()),
            Value::Bool(b) => Val::Lit(b.to_string()),
            Value::Object(o) if o.contains_key("Ref") => self.reference(o["Ref"].as_str().unwrap()),
            Value::Object(o) if o.contains_key("Fn::GetAtt") => {
                self.reference(o["Fn::GetAtt"][0].as_str().unwrap())
            }
            Value::Object(o) if o.contains_key("Fn::Join") => {
                let sep = o["Fn::Join"][0].as_str().unwrap();
                assert_eq!(sep, "", "joins without a separator");
                Val::Concat(
                    o["Fn::Join"][1]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| self.val(p))
                        .collect(),
                )
            }
            other => panic!("no rehearsal for the template value {other}"),
        }
    }

    fn secret_gen(&self, generate: &Value) -> Gen {
        let flag = |k: &str| generate[k].as_bool().unwrap_or(false);
        let mut classes: Vec<&str> = Vec::new();
        if !flag("ExcludeUppercase") {
            classes.push(UPPER);
        }
        if !flag("ExcludeLowercase") {
            classes.push(LOWER);
        }
        if !flag("ExcludeNumbers") {
            classes.push(DIGITS);
        }
        if !flag("ExcludePunctuation") {
            classes.push(PUNCTUATION);
        }
        if flag("IncludeSpace") {
            classes.push(" ");
        }
        let (charset, classes) = charset(
            &classes,
            generate["ExcludeCharacters"].as_str().unwrap_or_default(),
        );
        let password = Gen::Password {
            length: generate["PasswordLength"].as_u64().unwrap_or(32) as usize,
            charset,
            classes,
        };
        match generate["SecretStringTemplate"].as_str() {
            Some(template) => Gen::Template {
                template: serde_json::from_str(template).unwrap(),
                key: generate["GenerateStringKey"].as_str().unwrap().to_owned(),
                value: Box::new(password),
            },
            None => password,
        }
    }

    fn env(&self, vars: &Value) -> BTreeMap<String, Val> {
        match vars {
            Value::Object(o) => o.iter().map(|(k, v)| (k.clone(), self.val(v))).collect(),
            Value::Array(list) => list
                .iter()
                .map(|e| {
                    (
                        e["Name"].as_str().unwrap().to_owned(),
                        self.val(&e["Value"]),
                    )
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    }
}

/// Reads the spec out of `template`.
pub fn spec(template: &Value) -> Spec {
    let t = Template {
        resources: template["Resources"].as_object().unwrap(),
        tables: arroba::storage::dynamo::tables::definitions()
            .iter()
            .map(|d| d.suffix.to_owned())
            .collect(),
    };
    let mut spec = Spec {
        source: "cdk",
        ..Spec::default()
    };
    for (id, secret) in t.of_type("AWS::SecretsManager::Secret") {
        let generate = &secret["Properties"]["GenerateSecretString"];
        assert!(generate.is_object(), "{id} is generated by Secrets Manager");
        spec.secrets.insert(id.clone(), t.secret_gen(generate));
    }
    spec.lambda.env = t.env(&t.one("AWS::Lambda::Function")["Environment"]["Variables"]);
    let task = t.one("AWS::ECS::TaskDefinition");
    for c in task["ContainerDefinitions"].as_array().unwrap() {
        let secrets = c["Secrets"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|s| {
                        let id = s["ValueFrom"]["Ref"].as_str().unwrap().to_owned();
                        (s["Name"].as_str().unwrap().to_owned(), id)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let component = Component {
            env: t.env(&c["Environment"]),
            secrets,
            command: c["Command"]
                .as_array()
                .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default(),
            port: c["PortMappings"][0]["ContainerPort"]
                .as_u64()
                .map(|p| p as u16),
        };
        spec.containers
            .insert(c["Name"].as_str().unwrap().to_owned(), component);
    }
    spec.routes = routes(&t, &spec);
    spec.facts = facts(&t, template);
    spec
}

/// Path → component: CloudFront behaviours to the ALB, the ALB's rules to a target group's
/// port, the port to the container listening on it; everything else to the Lambda.
fn routes(t: &Template, spec: &Spec) -> Vec<(String, String)> {
    let container_on = |port: u64| -> String {
        spec.containers
            .iter()
            .find(|(_, c)| c.port == Some(port as u16))
            .map(|(name, _)| name.clone())
            .unwrap_or_else(|| panic!("no container on port {port}"))
    };
    let target_port = |tg: &Value| -> u64 {
        let id = tg["Ref"].as_str().unwrap();
        t.resources[id]["Properties"]["Port"].as_u64().unwrap()
    };
    let listener = t.one("AWS::ElasticLoadBalancingV2::Listener");
    let alb_default = container_on(target_port(
        &listener["DefaultActions"][0]["TargetGroupArn"],
    ));
    let mut alb_rules: Vec<(String, String)> = Vec::new();
    for (_, rule) in t.of_type("AWS::ElasticLoadBalancingV2::ListenerRule") {
        let p = &rule["Properties"];
        let to = container_on(target_port(&p["Actions"][0]["TargetGroupArn"]));
        for c in p["Conditions"].as_array().unwrap() {
            for path in c["PathPatternConfig"]["Values"].as_array().unwrap() {
                alb_rules.push((path.as_str().unwrap().to_owned(), to.clone()));
            }
        }
    }
    let dist = &t.one("AWS::CloudFront::Distribution")["DistributionConfig"];
    let alb_origin = |origin_id: &str| -> bool {
        dist["Origins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["Id"] == origin_id)
            .is_some_and(|o| o["DomainName"].to_string().contains("Alb"))
    };
    let mut routes = Vec::new();
    for b in dist["CacheBehaviors"].as_array().unwrap() {
        let path = b["PathPattern"].as_str().unwrap().to_owned();
        let to = if alb_origin(b["TargetOriginId"].as_str().unwrap()) {
            alb_rules
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, c)| c.clone())
                .unwrap_or_else(|| alb_default.clone())
        } else {
            "lambda".to_owned()
        };
        routes.push((path, to));
    }
    let default = dist["DefaultCacheBehavior"]["TargetOriginId"]
        .as_str()
        .unwrap();
    assert!(
        !alb_origin(default),
        "the default behaviour goes to the API"
    );
    routes.push(("*".to_owned(), "lambda".to_owned()));
    routes
}

/// The settings the two stacks must agree on.
fn facts(t: &Template, template: &Value) -> BTreeMap<String, String> {
    let mut facts = BTreeMap::new();
    let cluster = t.one("AWS::ECS::Cluster");
    facts.insert(
        "container insights".into(),
        cluster["ClusterSettings"][0]["Value"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let dist = &t.one("AWS::CloudFront::Distribution")["DistributionConfig"];
    facts.insert("edge ipv6".into(), dist["IPV6Enabled"].to_string());
    let groups = t.of_type("AWS::EC2::SecurityGroup");
    let group = |prefix: &str| {
        groups
            .iter()
            .find(|(id, _)| id.starts_with(prefix))
            .map(|(id, _)| id.as_str())
            .unwrap()
    };
    let (tasks, alb) = (group("FirehoseSecurityGroup"), group("AlbSecurityGroup"));
    let task_egress: Vec<String> = t.resources[tasks]["Properties"]["SecurityGroupEgress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} to {}",
                e["IpProtocol"],
                e["FromPort"],
                e["CidrIp"].as_str().unwrap()
            )
        })
        .collect();
    facts.insert("task egress".into(), task_egress.join(", "));
    let mut alb_egress: Vec<String> = t
        .of_type("AWS::EC2::SecurityGroupEgress")
        .iter()
        .filter(|(_, e)| e["Properties"]["GroupId"].to_string().contains(alb))
        .map(|(_, e)| {
            let p = &e["Properties"];
            assert!(p["DestinationSecurityGroupId"].to_string().contains(tasks));
            format!("{} {} to tasks", p["IpProtocol"], p["FromPort"])
        })
        .collect();
    alb_egress.sort();
    facts.insert("alb egress".into(), alb_egress.join(", "));
    let policies = t.of_type("AWS::IAM::Policy");
    let exec = policies
        .iter()
        .find(|(id, _)| id.starts_with("FirehoseTaskExecutionRole"))
        .unwrap();
    let secrets_read: usize = exec.1["Properties"]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Action"].to_string().contains("secretsmanager"))
        .map(|s| match &s["Resource"] {
            Value::Array(a) => a.len(),
            _ => 1,
        })
        .sum();
    facts.insert("execution role secrets".into(), secrets_read.to_string());
    let outputs: Vec<String> = template["Outputs"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| snake(k))
        .collect();
    facts.insert("outputs".into(), outputs.join(" "));
    let mut metrics: Vec<String> = t
        .of_type("AWS::CloudWatch::Alarm")
        .iter()
        .map(|(_, a)| a["Properties"]["MetricName"].as_str().unwrap().to_owned())
        .collect();
    metrics.sort();
    facts.insert("alarms".into(), metrics.join(" "));
    let notified = t.of_type("AWS::CloudWatch::Alarm").iter().all(|(_, a)| {
        a["Properties"]["AlarmActions"]
            .as_array()
            .is_some_and(|x| x.len() == 1)
    });
    facts.insert("alarms notify the topic".into(), notified.to_string());
    facts
}

/// `AdminPasswordSecretArn` → `admin_password_secret_arn`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}
