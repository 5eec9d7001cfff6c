"""Static checks of the Terraform module, run by `make infra-test` (no AWS account, no terraform
binary needed): every file parses as HCL, and the module has the resources and settings the CDK
stack has — tables from tables.json with PITR and deletion protection, private TLS-only blobs,
secrets only by ARN, log retention everywhere, and the alarms."""

import json
import pathlib
import re
import sys

import hcl2

HERE = pathlib.Path(__file__).parent
MODULE = HERE / "modules" / "arroba"


def unquote(value):
    """python-hcl2 8 keeps string literals quoted; strip that so values compare as plain data."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unquote(v) for v in value]
    return value


def load(path):
    with open(path) as f:
        return unquote(hcl2.load(f))


def resources(parsed):
    found = {}
    for block in parsed.get("resource", []):
        for kind, named in block.items():
            for name, body in named.items():
                found[(kind, name)] = body
    return found


def main():
    failures = []

    def check(ok, what):
        if not ok:
            failures.append(what)

    files = sorted(HERE.rglob("*.tf"))
    check(len(files) >= 8, f"expected the module and example files, found {len(files)}")
    module = {}
    for path in files:
        parsed = load(path)
        if MODULE in path.parents:
            module.update(resources(parsed))
    text = "\n".join(p.read_text() for p in MODULE.glob("*.tf"))

    table = module.get(("aws_dynamodb_table", "this"))
    check(table is not None, "aws_dynamodb_table.this exists")
    if table:
        check("tables.json" in json.dumps(table.get("for_each", "")) or "local.table_defs" in json.dumps(table.get("for_each", "")),
              "tables come from tables.json")
        check(table.get("billing_mode") == "PAY_PER_REQUEST", "on-demand billing")
        check(table.get("deletion_protection_enabled") is True, "deletion protection")
        check(table.get("point_in_time_recovery", [{}])[0].get("enabled") is True, "point-in-time recovery")
    check("tables.json" in (MODULE / "dynamodb.tf").read_text(), "dynamodb.tf reads tables.json")
    tables = json.loads((HERE.parent / "tables.json").read_text())
    check({t["suffix"] for t in tables} >= {"repos", "blocks", "events", "counters"}, "tables.json has the core tables")

    check("local.buckets" in json.dumps(module.get(("aws_s3_bucket_public_access_block", "this"), {}).get("for_each")),
          "the public access block covers both buckets")
    block = module.get(("aws_s3_bucket_public_access_block", "this"), {})
    check(all(block.get(k) is True for k in ["block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"]),
          "buckets block every kind of public access")
    check("local.buckets" in json.dumps(module.get(("aws_s3_bucket_server_side_encryption_configuration", "this"), {}).get("for_each")),
          "both buckets are encrypted")
    for bucket in ["blobs", "access_logs"]:
        check(f"{bucket} = aws_s3_bucket.{bucket}" in text, f"{bucket} is in local.buckets")
        check(("aws_s3_bucket_policy", bucket) in module, f"{bucket} has a TLS-only policy")
    check(text.count('"aws:SecureTransport" = "false"') >= 2, "both buckets deny plain HTTP")

    lam = module.get(("aws_lambda_function", "xrpc"), {})
    check(lam.get("runtime") == "provided.al2023", "Lambda runs provided.al2023")
    env = json.dumps(lam.get("environment", ""))
    check("local.lambda_environment" in env and "local.lambda_secret_arns" in env,
          "the Lambda's environment is the rehearsed locals (infra/rehearsal.py reads them)")
    secrets = (MODULE / "secrets.tf").read_text()
    for arn in ["PDS_JWT_SECRET_ARN", "PDS_ADMIN_PASSWORD_ARN", "ARROBA_KEY_ENCRYPTION_KEYS_ARN",
                "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX_ARN"]:
        check(arn in secrets, f"Lambda gets {arn}")
    check(module.get(("random_id", "plc_rotation_key"), {}).get("byte_length") == 32,
          "the PLC rotation key is 32 random bytes (64 hex digits)")
    check(module.get(("random_id", "key_encryption_key"), {}).get("byte_length") == 32,
          "the key-encryption key is 32 random bytes")
    kek_value = module.get(("aws_secretsmanager_secret_version", "key_encryption_keys"), {}).get("secret_string")
    check(kek_value == "k1:${random_id.key_encryption_key.b64_std}",
          f"the key-encryption key secret has a value, in the id:base64key form ({kek_value!r})")
    for kind, name in [("random_id", "key_encryption_key"), ("aws_secretsmanager_secret", "key_encryption_keys"),
                       ("random_id", "plc_rotation_key"), ("aws_secretsmanager_secret", "plc_rotation_key")]:
        check(module.get((kind, name), {}).get("lifecycle", [{}])[0].get("prevent_destroy") is True,
              f"{kind}.{name} cannot be destroyed (losing it loses every account's keys)")
    firehose = (MODULE / "firehose.tf").read_text()
    check("plc_rotation_key" not in firehose and "key_encryption" not in firehose,
          "the task never gets the PLC rotation key or the key-encryption keys")
    container_secrets = re.findall(r"^\s*secrets\s*=.*$", firehose, re.M)
    check(len(container_secrets) == 1 and "local.bulk_secrets" in container_secrets[0],
          "only the bulk container has secrets")
    check("PDS_JWT_SECRET\"" not in env, "no plain secret in the Lambda environment")

    variables = {}
    for block in load(MODULE / "variables.tf").get("variable", []):
        variables.update(block)
    check(variables["invite_required"].get("default") is True, "invites are required by default")
    check(variables["crawlers"].get("default") == "https://bsky.network", "the main relay is crawled by default")
    check(variables["blob_upload_limit"].get("default") == 52428800, "50 MB uploads by default")
    check("example.com" not in json.dumps(variables), "no variable defaults to an example domain")

    stage = module.get(("aws_apigatewayv2_stage", "default"), {})
    check("throttling_rate_limit" in json.dumps(stage), "the API is throttled")
    check(("aws_s3_bucket_ownership_controls", "access_logs") in module,
          "the log bucket accepts CloudFront's ACL-based logging (ObjectWriter)")
    check(("aws_ecr_repository", "firehose") in module, "the module creates the image's ECR repository")

    groups = [b for (k, _), b in module.items() if k == "aws_cloudwatch_log_group"]
    check(len(groups) >= 4, "log groups for Lambda, API, firehose and flow logs")
    check(all("log_retention_days" in json.dumps(g.get("retention_in_days")) for g in groups), "every log group has retention")

    alarms = (MODULE / "alarms.tf").read_text()
    for metric in ["5xx", "Errors", "ReadThrottleEvents", "WriteThrottleEvents", "FirehoseLag", "HealthyHostCount"]:
        check(f'"{metric}"' in alarms, f"an alarm on {metric}")
    check("aws_dynamodb_table.this" in alarms, "a throttle alarm for every table")
    check(alarms.count("alarm_actions       = [aws_sns_topic.alarms.arn]") == 2, "every alarm notifies the topic")

    check('ARROBA_LOG_FORMAT = "json"' in secrets, "JSON logs, which the lag metric filter reads")
    check(module.get(("aws_lb", "firehose"), {}).get("idle_timeout") == 3600, "ALB idle timeout suits WebSockets")
    for name in ["firehose", "bulk"]:
        tg = module.get(("aws_lb_target_group", name), {})
        check("/xrpc/_health" in json.dumps(tg.get("health_check")), f"{name} health check")
    check("local.bulk_paths" in json.dumps(module.get(("aws_lb_listener_rule", "bulk"), {})), "the bulk paths go to the bulk container")
    task_policy = json.dumps(module.get(("aws_iam_role_policy", "firehose_task"), {}))
    check("secretsmanager" not in task_policy, "the task role reads no secret")
    check("dynamodb:Attributes" in task_policy and "local.repo_record_attributes" in task_policy,
          "the task role reads repo records only without their sealed keys")
    check("local.repo_head_attributes" in task_policy,
          "the task role updates a repo's head and rev only (an import), never its keys")
    head_attributes = re.search(r"repo_head_attributes\s*=\s*\[([^\]]*)\]", firehose)
    check(head_attributes is not None and "keys" not in head_attributes.group(1),
          "the head attributes exclude the sealed keys")

    dist = module.get(("aws_cloudfront_distribution", "edge"), {})
    check(dist.get("aliases") == "${local.edge_names}", "the edge serves hostname and *.hostname")
    behaviours = dist.get("dynamic", [{}])
    check("local.firehose_paths" in json.dumps(behaviours), "firehose paths go to the ALB origin")
    check("local.bulk_paths" in json.dumps(behaviours), "bulk paths go to the ALB origin")
    check(dist.get("is_ipv6_enabled") is True, "the edge answers over IPv6")
    check(("aws_sesv2_email_identity", "sender") in module and "ses:SendEmail" in text,
          "mail: an SES identity the Lambda may send as")
    check(("aws_route53_record", "dkim") in module, "mail: DKIM records in the zone")
    check("33f36d7e-f396-46d9-90e0-52428a34d9dc" in text,
          "the edge forwards Host and the viewer's address (AllViewerAndCloudFrontHeaders)")
    check(("aws_apigatewayv2_domain_name", "edge") in module and ("aws_apigatewayv2_api_mapping", "edge") in module,
          "API Gateway custom domains accept the forwarded Host")
    check(("aws_route53_record", "edge") in module, "optional DNS records")
    cert = module.get(("aws_acm_certificate", "this"), {})
    check(cert.get("validation_method") == "DNS" and cert.get("subject_alternative_names") == ["*.${var.hostname}"],
          "a new certificate covers hostname and *.hostname, DNS-validated")
    check(("aws_acm_certificate_validation", "this") in module, "the new certificate is used only once validated")
    for path in files:
        body = path.read_text()
        check("insecure-development" not in body and "hunter2" not in body, f"{path.name} holds no secret values")

    if failures:
        print("terraform check failed:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print(f"terraform: {len(files)} files parse, {len(module)} resources, all checks pass")


if __name__ == "__main__":
    main()
