//! Reading a [`Spec`] out of the Terraform module (`infra/terraform/modules/arroba`), by
//! evaluating its locals with `hcl-rs`: the variables take their defaults (or the rehearsal's
//! inputs), and every resource attribute is a placeholder (`⟨type.name.attr⟩`) the spec turns
//! into a symbolic value.

use std::collections::{BTreeMap, BTreeSet};

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Block, Body, Expression, Value};

use super::spec::{Component, DIGITS, Gen, LOWER, PUNCTUATION, Spec, UPPER, Val, charset};

const MODULE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/infra/terraform/modules/arroba"
);

struct Module {
    variables: BTreeMap<String, Expression>,
    locals: BTreeMap<String, Expression>,
    /// (type, name) → body.
    resources: BTreeMap<(String, String), Body>,
    outputs: Vec<String>,
}

fn label(block: &Block, i: usize) -> String {
    block.labels()[i].as_str().to_owned()
}

fn load() -> Module {
    let mut module = Module {
        variables: BTreeMap::new(),
        locals: BTreeMap::new(),
        resources: BTreeMap::new(),
        outputs: Vec::new(),
    };
    let mut files: Vec<_> = std::fs::read_dir(MODULE)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tf"))
        .collect();
    files.sort();
    for path in files {
        let body: Body = hcl::parse(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for block in body.blocks() {
            match block.identifier() {
                "variable" => {
                    if let Some(default) = block.body().attributes().find(|a| a.key() == "default")
                    {
                        module
                            .variables
                            .insert(label(block, 0), default.expr().clone());
                    }
                }
                "locals" => {
                    for a in block.body().attributes() {
                        module.locals.insert(a.key().to_owned(), a.expr().clone());
                    }
                }
                "resource" => {
                    module
                        .resources
                        .insert((label(block, 0), label(block, 1)), block.body().clone());
                }
                "output" => module.outputs.push(label(block, 0)),
                _ => {}
            }
        }
    }
    module
}

fn text(expr: &Expression) -> String {
    hcl::format::to_string(expr).unwrap()
}

/// Resource and data references in `expr` (`aws_s3_bucket.blobs.bucket`).
fn traversals(expr: &str) -> BTreeSet<(String, String, String)> {
    let mut found = BTreeSet::new();
    let words: Vec<&str> = expr
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .collect();
    for word in words {
        let parts: Vec<&str> = word.split('.').collect();
        let resource = parts.len() >= 3
            && (parts[0].starts_with("aws_") || parts[0].starts_with("random_"))
            && !parts[1].is_empty();
        if resource {
            found.insert((parts[0].into(), parts[1].into(), parts[2].into()));
        } else if parts.len() >= 4 && parts[0] == "data" {
            found.insert((
                format!("data.{}", parts[1]),
                parts[2].into(),
                parts[3].into(),
            ));
        }
    }
    found
}

fn merge(args: FuncArgs) -> Result<Value, String> {
    let mut out = hcl::Map::new();
    for arg in args.iter() {
        out.extend(arg.as_object().ok_or("merge takes objects")?.clone());
    }
    Ok(Value::Object(out))
}

fn tostring(args: FuncArgs) -> Result<Value, String> {
    Ok(Value::String(match &args[0] {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => return Err(format!("tostring of {other:?}")),
    }))
}

fn values(args: FuncArgs) -> Result<Value, String> {
    let object = args[0].as_object().ok_or("values takes an object")?;
    Ok(Value::Array(object.values().cloned().collect()))
}

struct Evaluator<'m> {
    module: &'m Module,
    vars: hcl::Map<String, Value>,
    locals: hcl::Map<String, Value>,
}

impl Evaluator<'_> {
    fn context(&self, expr: &str) -> Context<'static> {
        let mut ctx = Context::new();
        ctx.declare_var("var", Value::Object(self.vars.clone()));
        ctx.declare_var("local", Value::Object(self.locals.clone()));
        ctx.declare_func(
            "merge",
            FuncDef::builder()
                .variadic_param(ParamType::Any)
                .build(merge),
        );
        ctx.declare_func(
            "tostring",
            FuncDef::builder().param(ParamType::Any).build(tostring),
        );
        ctx.declare_func(
            "values",
            FuncDef::builder().param(ParamType::Any).build(values),
        );
        // Every resource attribute the expression reads is a placeholder for the world to fill.
        let mut roots: BTreeMap<String, hcl::Map<String, Value>> = BTreeMap::new();
        for (kind, name, attr) in traversals(expr) {
            let placeholder = Value::String(format!("⟨{kind}.{name}.{attr}⟩"));
            let (root, kind) = match kind.strip_prefix("data.") {
                Some(k) => ("data".to_owned(), Some(k.to_owned())),
                None => (kind, None),
            };
            let entry = roots.entry(root).or_default();
            let named = match kind {
                Some(k) => entry
                    .entry(k)
                    .or_insert_with(|| Value::Object(hcl::Map::new()))
                    .as_object_mut()
                    .unwrap(),
                None => entry,
            };
            let object = named
                .entry(name)
                .or_insert_with(|| Value::Object(hcl::Map::new()));
            object.as_object_mut().unwrap().insert(attr, placeholder);
        }
        for (root, object) in roots {
            ctx.declare_var(root, Value::Object(object));
        }
        ctx
    }

    /// The value of `local.name`, evaluating the locals it uses first.
    fn local(&mut self, name: &str) -> Value {
        if let Some(v) = self.locals.get(name) {
            return v.clone();
        }
        let expr = self.module.locals[name].clone();
        let value = self.eval(&expr);
        self.locals.insert(name.to_owned(), value.clone());
        value
    }

    /// Evaluates `expr`, and first every local it reads.
    fn eval(&mut self, expr: &Expression) -> Value {
        let source = text(expr);
        for dep in source.split("local.").skip(1) {
            let dep: String = dep
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            self.local(&dep);
        }
        expr.evaluate(&self.context(&source))
            .unwrap_or_else(|e| panic!("cannot rehearse `{source}`: {e}"))
    }
}

/// A string with placeholders as a symbolic value.
fn val(s: &str) -> Val {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find('⟨') {
        if start > 0 {
            parts.push(Val::Lit(rest[..start].to_owned()));
        }
        let end = rest[start..].find('⟩').unwrap() + start;
        let reference = &rest[start + '⟨'.len_utf8()..end];
        parts.push(match reference.split('.').collect::<Vec<_>>()[..] {
            ["aws_secretsmanager_secret", name, "arn"] => Val::SecretArn(name.to_owned()),
            ["aws_s3_bucket", "blobs", "bucket"] => Val::Bucket,
            _ => panic!("no rehearsal for a reference to {reference}"),
        });
        rest = &rest[end + '⟩'.len_utf8()..];
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(Val::Lit(rest.to_owned()));
    }
    match parts.len() {
        1 => parts.pop().unwrap(),
        _ => Val::Concat(parts),
    }
}

fn env_map(value: &Value) -> BTreeMap<String, Val> {
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), val(v.as_str().unwrap())))
        .collect()
}

/// An expression that reads nothing (a literal list, number or string).
fn literal(expr: &Expression) -> Value {
    expr.evaluate(&Context::new())
        .unwrap_or_else(|e| panic!("`{}` is not a literal: {e}", text(expr)))
}

fn attr<'b>(body: &'b Body, key: &str) -> Option<&'b Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

fn blocks<'b>(body: &'b Body, ident: &str) -> Vec<&'b Block> {
    body.blocks().filter(|b| b.identifier() == ident).collect()
}

/// Reads the spec, with these variables set as an operator would (the rest take defaults).
pub fn spec(inputs: &[(&str, &str)]) -> Spec {
    let module = load();
    let mut ev = Evaluator {
        module: &module,
        vars: hcl::Map::new(),
        locals: hcl::Map::new(),
    };
    for (name, default) in &module.variables {
        let value = default.evaluate(&Context::new()).unwrap();
        ev.vars.insert(name.clone(), value);
    }
    for (name, value) in inputs {
        ev.vars
            .insert((*name).to_owned(), Value::String((*value).to_owned()));
    }
    let resource = |kind: &str, name: &str| -> &Body {
        module
            .resources
            .get(&(kind.to_owned(), name.to_owned()))
            .unwrap_or_else(|| panic!("{kind}.{name} is in the module"))
    };
    let mut spec = Spec {
        source: "terraform",
        ..Spec::default()
    };

    // The Lambda's environment is the two locals the rehearsal reads.
    let lambda = resource("aws_lambda_function", "xrpc");
    let variables = attr(blocks(lambda, "environment")[0].body(), "variables").unwrap();
    assert_eq!(
        text(variables),
        "merge(local.lambda_environment, local.lambda_secret_arns)"
    );
    ev.local("lambda_environment");
    ev.local("lambda_secret_arns");
    spec.lambda.env = env_map(&ev.eval(variables));

    // The task's containers are the two locals the task definition encodes.
    let task = resource("aws_ecs_task_definition", "firehose");
    assert_eq!(
        text(attr(task, "container_definitions").unwrap()),
        "jsonencode([local.firehose_container, local.bulk_container])"
    );
    for local in ["firehose_container", "bulk_container"] {
        let c = ev.local(local);
        let list = |key: &str| -> Vec<(String, String)> {
            c.as_object()
                .unwrap()
                .get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|e| {
                            let o = e.as_object().unwrap();
                            let value = o.get("value").or_else(|| o.get("valueFrom")).unwrap();
                            (
                                o["name"].as_str().unwrap().to_owned(),
                                value.as_str().unwrap().to_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let o = c.as_object().unwrap();
        let component = Component {
            env: list("environment")
                .into_iter()
                .map(|(k, v)| (k, val(&v)))
                .collect(),
            secrets: list("secrets")
                .into_iter()
                .map(|(k, v)| match val(&v) {
                    Val::SecretArn(id) => (k, id),
                    other => panic!("secret {k} is {other:?}"),
                })
                .collect(),
            command: o["command"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect(),
            port: o["portMappings"].as_array().unwrap()[0]
                .as_object()
                .unwrap()["containerPort"]
                .as_u64()
                .map(|p| p as u16),
        };
        spec.containers
            .insert(o["name"].as_str().unwrap().to_owned(), component);
    }

    // Secrets: each secret's version, with random_password and random_id as generators.
    for ((kind, name), body) in &module.resources {
        if kind != "aws_secretsmanager_secret_version" {
            continue;
        }
        let id = text(attr(body, "secret_id").unwrap());
        let secret = id
            .strip_prefix("aws_secretsmanager_secret.")
            .and_then(|s| s.strip_suffix(".id"))
            .unwrap_or_else(|| panic!("{name}'s secret_id is {id}"))
            .to_owned();
        let value = ev.eval(attr(body, "secret_string").unwrap());
        spec.secrets
            .insert(secret, generator(&module, value.as_str().unwrap()));
    }
    spec.routes = routes(&mut ev, &module, &spec);
    spec.facts = facts(&mut ev, &module);
    spec
}

/// A secret's value: literal text around random_password and random_id placeholders.
fn generator(module: &Module, value: &str) -> Gen {
    let mut parts = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find('⟨') {
        if start > 0 {
            parts.push(Gen::Lit(rest[..start].to_owned()));
        }
        let end = rest[start..].find('⟩').unwrap() + start;
        let reference: Vec<&str> = rest[start + '⟨'.len_utf8()..end].split('.').collect();
        let body = &module.resources[&(reference[0].to_owned(), reference[1].to_owned())];
        let number = |key: &str, default: u64| {
            attr(body, key)
                .map(|e| e.evaluate(&Context::new()).unwrap().as_u64().unwrap())
                .unwrap_or(default)
        };
        let flag = |key: &str| {
            attr(body, key)
                .map(|e| e.evaluate(&Context::new()).unwrap().as_bool().unwrap())
                .unwrap_or(true)
        };
        parts.push(match (reference[0], reference[2]) {
            ("random_password", "result") => {
                let mut classes = Vec::new();
                if flag("upper") {
                    classes.push(UPPER);
                }
                if flag("lower") {
                    classes.push(LOWER);
                }
                if flag("numeric") {
                    classes.push(DIGITS);
                }
                if flag("special") {
                    classes.push(PUNCTUATION);
                }
                let (charset, classes) = charset(&classes, "");
                Gen::Password {
                    length: number("length", 0) as usize,
                    charset,
                    // random_password guarantees a class only with `min_*`, which we never set.
                    classes: classes.into_iter().take(0).collect(),
                }
            }
            ("random_id", encoding) => Gen::Bytes {
                length: number("byte_length", 0) as usize,
                encoding: encoding.to_owned(),
            },
            (kind, attr) => panic!("no rehearsal for {kind}.{attr}"),
        });
        rest = &rest[end + '⟩'.len_utf8()..];
    }
    if !rest.is_empty() {
        parts.push(Gen::Lit(rest.to_owned()));
    }
    match parts.len() {
        1 => parts.pop().unwrap(),
        _ => Gen::Concat(parts),
    }
}

/// Path → component, from the distribution's behaviours, the listener and its rule.
fn routes(ev: &mut Evaluator, module: &Module, spec: &Spec) -> Vec<(String, String)> {
    let res = |kind: &str, name: &str| &module.resources[&(kind.to_owned(), name.to_owned())];
    let port_of = |tg_ref: &str| -> u16 {
        let name = tg_ref
            .strip_prefix("aws_lb_target_group.")
            .and_then(|s| s.strip_suffix(".arn"))
            .unwrap();
        let port = attr(res("aws_lb_target_group", name), "port").unwrap();
        port.evaluate(&Context::new()).unwrap().as_u64().unwrap() as u16
    };
    let container_on = |port: u16| -> String {
        spec.containers
            .iter()
            .find(|(_, c)| c.port == Some(port))
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| panic!("no container on port {port}"))
    };
    let listener = res("aws_lb_listener", "firehose");
    let default_tg = text(
        attr(
            blocks(listener, "default_action")[0].body(),
            "target_group_arn",
        )
        .unwrap(),
    );
    let alb_default = container_on(port_of(&default_tg));
    let rule = res("aws_lb_listener_rule", "bulk");
    let rule_to = container_on(port_of(&text(
        attr(blocks(rule, "action")[0].body(), "target_group_arn").unwrap(),
    )));
    let pattern = blocks(blocks(rule, "condition")[0].body(), "path_pattern")[0];
    let rule_paths = ev.eval(attr(pattern.body(), "values").unwrap());
    let rule_paths: Vec<String> = rule_paths
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    let dist = res("aws_cloudfront_distribution", "edge");
    let alb_origins: Vec<String> = blocks(dist, "origin")
        .iter()
        .filter(|o| text(attr(o.body(), "domain_name").unwrap()).contains("aws_lb.firehose"))
        .map(|o| {
            ev.eval(attr(o.body(), "origin_id").unwrap())
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut routes = Vec::new();
    for dynamic in blocks(dist, "dynamic") {
        assert_eq!(label(dynamic, 0), "ordered_cache_behavior");
        let paths = ev.eval(attr(dynamic.body(), "for_each").unwrap());
        let content = blocks(dynamic.body(), "content")[0].body();
        let origin = ev.eval(attr(content, "target_origin_id").unwrap());
        assert_eq!(
            text(attr(content, "path_pattern").unwrap()),
            "ordered_cache_behavior.value"
        );
        for path in paths.as_array().unwrap() {
            let path = path.as_str().unwrap().to_owned();
            let to = if alb_origins
                .iter()
                .any(|o| Some(o.as_str()) == origin.as_str())
            {
                if rule_paths.contains(&path) {
                    rule_to.clone()
                } else {
                    alb_default.clone()
                }
            } else {
                "lambda".to_owned()
            };
            routes.push((path, to));
        }
    }
    let default = blocks(dist, "default_cache_behavior")[0].body();
    let default_origin = ev.eval(attr(default, "target_origin_id").unwrap());
    assert!(
        !alb_origins
            .iter()
            .any(|o| Some(o.as_str()) == default_origin.as_str()),
        "the default behaviour goes to the API"
    );
    routes.push(("*".to_owned(), "lambda".to_owned()));
    routes
}

/// The settings the two stacks must agree on, named as the CDK reader names them.
fn facts(ev: &mut Evaluator, module: &Module) -> BTreeMap<String, String> {
    let res = |kind: &str, name: &str| &module.resources[&(kind.to_owned(), name.to_owned())];
    let mut facts = BTreeMap::new();
    let setting = blocks(res("aws_ecs_cluster", "this"), "setting")[0].body();
    facts.insert(
        "container insights".into(),
        ev.eval(attr(setting, "value").unwrap())
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let ipv6 = ev.eval(
        attr(
            res("aws_cloudfront_distribution", "edge"),
            "is_ipv6_enabled",
        )
        .unwrap(),
    );
    facts.insert("edge ipv6".into(), ipv6.to_string());
    let egress = |group: &str, to_tasks: bool| -> Vec<String> {
        let mut rules: Vec<String> = blocks(res("aws_security_group", group), "egress")
            .iter()
            .map(|e| {
                let b = e.body();
                let get = |k: &str| literal(attr(b, k).unwrap());
                let target = if to_tasks {
                    assert!(
                        text(attr(b, "security_groups").unwrap())
                            .contains("aws_security_group.firehose")
                    );
                    "tasks".to_owned()
                } else {
                    get("cidr_blocks").as_array().unwrap()[0]
                        .as_str()
                        .unwrap()
                        .to_owned()
                };
                format!(
                    "\"{}\" {} to {target}",
                    get("protocol").as_str().unwrap(),
                    get("from_port")
                )
            })
            .collect();
        rules.sort();
        rules
    };
    facts.insert("task egress".into(), egress("firehose", false).join(", "));
    facts.insert("alb egress".into(), egress("alb", true).join(", "));
    let exec = res("aws_iam_role_policy", "firehose_execution_secrets");
    let policy = text(attr(exec, "policy").unwrap());
    assert!(policy.contains("values(local.bulk_secrets)"), "{policy}");
    facts.insert(
        "execution role secrets".into(),
        ev.local("bulk_secrets")
            .as_object()
            .unwrap()
            .len()
            .to_string(),
    );
    let mut outputs = module.outputs.clone();
    outputs.sort();
    facts.insert("outputs".into(), outputs.join(" "));
    let mut metrics: Vec<String> = Vec::new();
    for (_, alarm) in ev.local("threshold_alarms").as_object().unwrap() {
        metrics.push(
            alarm.as_object().unwrap()["metric"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let tables = arroba::storage::dynamo::tables::definitions().len();
    let throttle = text(&module.locals["throttle_alarms"]);
    for metric in ["ReadThrottleEvents", "WriteThrottleEvents"] {
        assert!(throttle.contains(metric) && throttle.contains("aws_dynamodb_table.this"));
        metrics.extend(std::iter::repeat_n(metric.to_owned(), tables));
    }
    let unhealthy = res("aws_cloudwatch_metric_alarm", "unhealthy");
    let targets = ev.eval(attr(unhealthy, "for_each").unwrap());
    let metric = ev.eval(attr(unhealthy, "metric_name").unwrap());
    for _ in targets.as_object().unwrap() {
        metrics.push(metric.as_str().unwrap().to_owned());
    }
    metrics.sort();
    facts.insert("alarms".into(), metrics.join(" "));
    let notified = ["threshold", "unhealthy"].iter().all(|name| {
        let actions =
            text(attr(res("aws_cloudwatch_metric_alarm", name), "alarm_actions").unwrap());
        actions.split_whitespace().collect::<String>() == "[aws_sns_topic.alarms.arn]"
    });
    facts.insert("alarms notify the topic".into(), notified.to_string());
    facts
}
