// Synthesises the stack with representative parameters and checks every property the deployment
// promises, that cdk-nag (AwsSolutions) finds nothing unsuppressed, and that the tables match the
// Rust definitions (../../tables.json, itself checked against the code by tests/infra.rs).
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Aspects } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ArrobaStack, BSKY_APP_VIEW, BSKY_REPORT_SERVICE, BULK_PATHS, FIREHOSE_PATHS, MAIN_RELAY, REPO_HEAD_ATTRIBUTES, REPO_RECORD_ATTRIBUTES, propsFromContext, tableDefinitions } from '../lib/arroba-stack';

// Every synth writes its cloud assembly under one temporary folder, removed when the tests end
// (an App without an outdir leaves a new cdk.out folder in the system temp dir each time).
const assemblies = fs.mkdtempSync(path.join(os.tmpdir(), 'arroba-cdk-test-'));
after(() => fs.rmSync(assemblies, { recursive: true, force: true }));

function synth(extra: Record<string, string> = {}) {
  const outdir = fs.mkdtempSync(path.join(assemblies, 'assembly-'));
  const app = new App({ outdir });
  const stack = new ArrobaStack(app, 'Test', {
    hostname: 'pds.example.com',
    handleDomains: '',
    plcUrl: 'https://plc.directory',
    crawlers: MAIN_RELAY,
    appViewUrl: BSKY_APP_VIEW.url,
    appViewDid: BSKY_APP_VIEW.did,
    reportServiceUrl: BSKY_REPORT_SERVICE.url,
    reportServiceDid: BSKY_REPORT_SERVICE.did,
    emailFrom: 'noreply@pds.example.com',
    architecture: 'arm64',
    lambdaAsset: path.join(__dirname, '..', '..', '..', 'lambda-placeholder'),
    inviteRequired: true,
    blobUploadLimit: 52428800,
    apiRateLimit: 200,
    apiBurstLimit: 400,
    env: { region: 'us-east-1', account: '123456789012' },
    ...extra,
  });
  Aspects.of(stack).add(new AwsSolutionsChecks());
  const template = Template.fromStack(stack);
  // The asset manifest says how CDK will build each image (written by the synth just done).
  const assets = () => JSON.parse(fs.readFileSync(path.join(outdir, `${stack.artifactId}.assets.json`), 'utf8'));
  return { stack, template, assets };
}

const { stack, template } = synth();

test('cdk-nag AwsSolutions finds nothing unsuppressed', () => {
  const errors = Annotations.fromStack(stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*'));
  const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*'));
  assert.deepEqual([...errors, ...warnings].map((e) => e.entry.data), []);
});

test('tables match the Rust definitions: keys, indexes, TTL, on-demand, PITR, deletion protection', () => {
  const defs = tableDefinitions();
  const tables = template.findResources('AWS::DynamoDB::Table');
  assert.equal(Object.keys(tables).length, defs.length);
  for (const def of defs) {
    const [id, table] = Object.entries(tables).find(([id]) => id.startsWith(`Table${def.suffix.replace(/-/g, '')}`)) as [string, any];
    const p = table.Properties;
    // CloudFormation names the tables, so a rolled-back first deploy never blocks the next one;
    // the binaries get the names in ARROBA_TABLE_NAMES.
    assert.equal(p.TableName, undefined, id);
    assert.equal(p.BillingMode, 'PAY_PER_REQUEST');
    assert.equal(p.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled, true);
    assert.equal(p.DeletionProtectionEnabled, true);
    assert.equal(table.DeletionPolicy, 'Retain');
    const keys = [{ AttributeName: def.partition.name, KeyType: 'HASH' }];
    if (def.sort) keys.push({ AttributeName: def.sort.name, KeyType: 'RANGE' });
    assert.deepEqual(p.KeySchema, keys);
    const attrs = new Map<string, string>([[def.partition.name, def.partition.type]]);
    if (def.sort) attrs.set(def.sort.name, def.sort.type);
    for (const i of def.indexes) {
      attrs.set(i.partition.name, i.partition.type);
      if (i.sort) attrs.set(i.sort.name, i.sort.type);
    }
    assert.deepEqual(
      [...p.AttributeDefinitions].sort((a: any, b: any) => a.AttributeName.localeCompare(b.AttributeName)),
      [...attrs.entries()].map(([AttributeName, AttributeType]) => ({ AttributeName, AttributeType })).sort((a, b) => a.AttributeName.localeCompare(b.AttributeName)),
    );
    const gsis = (p.GlobalSecondaryIndexes ?? []).map((g: any) => ({ name: g.IndexName, keys: g.KeySchema, projection: g.Projection.ProjectionType }));
    assert.deepEqual(gsis, def.indexes.map((i) => ({
      name: i.name,
      keys: [{ AttributeName: i.partition.name, KeyType: 'HASH' }, ...(i.sort ? [{ AttributeName: i.sort.name, KeyType: 'RANGE' }] : [])],
      projection: 'KEYS_ONLY',
    })));
    if (def.ttl) assert.deepEqual(p.TimeToLiveSpecification, { AttributeName: def.ttl, Enabled: true });
    else assert.equal(p.TimeToLiveSpecification, undefined);
  }
});

test('the blob bucket is private, encrypted, TLS-only and cleans up incomplete uploads', () => {
  template.hasResourceProperties('AWS::S3::Bucket', {
    PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
    BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
    LifecycleConfiguration: { Rules: Match.arrayWith([Match.objectLike({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } })]) },
    LoggingConfiguration: Match.anyValue(),
  });
  template.hasResourceProperties('AWS::S3::BucketPolicy', {
    PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
  });
});

test('the XRPC Lambda: provided.al2023, the chosen architecture, secrets only by ARN, safe defaults', () => {
  const fns = template.findResources('AWS::Lambda::Function');
  const [fn] = Object.values(fns) as any[];
  assert.equal(fn.Properties.Runtime, 'provided.al2023');
  assert.deepEqual(fn.Properties.Architectures, ['arm64']);
  const env = fn.Properties.Environment.Variables;
  for (const secret of ['PDS_JWT_SECRET', 'PDS_ADMIN_PASSWORD', 'ARROBA_KEY_ENCRYPTION_KEYS', 'PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX']) {
    assert.equal(env[secret], undefined, `${secret} must not be a plain environment value`);
    assert.ok(env[`${secret}_ARN`], `${secret} is passed by ARN`);
  }
  assert.equal(env.PDS_STORAGE, 'dynamodb');
  assert.equal(env.PDS_INVITE_REQUIRED, 'true', 'invites are required unless the operator turns them off');
  assert.equal(env.PDS_SERVICE_HANDLE_DOMAINS, '.pds.example.com', 'handles default to the hostname');
  assert.equal(env.PDS_BLOB_UPLOAD_LIMIT, '52428800');
  assert.ok(JSON.stringify(env.ARROBA_TABLE_NAMES).includes('Tablerepos'), 'the table names reach the binary');
  const x86 = synth({ architecture: 'x86_64' } as any).template;
  assert.deepEqual((Object.values(x86.findResources('AWS::Lambda::Function'))[0] as any).Properties.Architectures, ['x86_64']);
  template.resourceCountIs('AWS::ApiGatewayV2::Api', 1);
  template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
    AccessLogSettings: Match.anyValue(),
    DefaultRouteSettings: { ThrottlingRateLimit: 200, ThrottlingBurstLimit: 400 },
  });
});

test('context: hostname is required, nothing defaults to an example domain, crawlers default to the main relay', () => {
  const cdkJson = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'cdk.json'), 'utf8'));
  assert.ok(!JSON.stringify(cdkJson).includes('example.com'), 'cdk.json names no example domain');
  assert.throws(() => propsFromContext(new App({ context: cdkJson.context })), /missing context value hostname/);
  const props = propsFromContext(new App({ context: { ...cdkJson.context, hostname: 'pds.rehearsal.test' } }));
  assert.equal(props.crawlers, MAIN_RELAY);
  assert.deepEqual([props.appViewUrl, props.appViewDid], [BSKY_APP_VIEW.url, BSKY_APP_VIEW.did]);
  assert.deepEqual([props.reportServiceUrl, props.reportServiceDid], [BSKY_REPORT_SERVICE.url, BSKY_REPORT_SERVICE.did]);
  assert.equal(props.inviteRequired, true);
  assert.equal(props.emailFrom, 'noreply@pds.rehearsal.test');
  assert.equal(props.handleDomains, '');
  // An empty value (what `make deploy` would pass for an unset variable) is the default, not "".
  const empty = propsFromContext(new App({ context: { hostname: 'h.test', crawlers: '', certificateArn: '' } }));
  assert.equal(empty.crawlers, MAIN_RELAY);
  assert.equal(empty.certificateArn, undefined);
});

test('secrets live in Secrets Manager in the forms the binaries read, and the keys outlive the stack', () => {
  template.resourceCountIs('AWS::SecretsManager::Secret', 4);
  const secrets = template.findResources('AWS::SecretsManager::Secret');
  const byId = (prefix: string) => Object.entries(secrets).find(([id]) => id.startsWith(prefix))![1] as any;
  // The PLC rotation key is generated as 64 lowercase hex digits (a k256 private key).
  const hex = { PasswordLength: 64, ExcludeUppercase: true, ExcludePunctuation: true, ExcludeCharacters: 'ghijklmnopqrstuvwxyz', IncludeSpace: false };
  assert.deepEqual(byId('PlcRotationKey').Properties.GenerateSecretString, hex);
  // The key-encryption key: {"id":"k1","key":<64 hex digits>}, a form the binaries accept.
  const kek = byId('KeyEncryptionKeys').Properties.GenerateSecretString;
  assert.deepEqual(kek, { ...hex, SecretStringTemplate: '{"id":"k1"}', GenerateStringKey: 'key' });
  for (const id of ['KeyEncryptionKeys', 'PlcRotationKey']) {
    assert.equal(byId(id).DeletionPolicy, 'Retain', `${id} is kept when the stack goes`);
  }
  const json = JSON.stringify(template.toJSON());
  assert.ok(!/insecure-development|hunter2/.test(json));
  const task = Object.values(template.findResources('AWS::ECS::TaskDefinition'))[0] as any;
  const containers = Object.fromEntries(task.Properties.ContainerDefinitions.map((c: any) => [c.Name, c]));
  assert.equal(containers.firehose.Secrets, undefined, 'the firehose gets no secret');
  assert.deepEqual(containers.bulk.Secrets.map((s: any) => s.Name), ['PDS_JWT_SECRET'], 'the bulk container gets only the JWT secret');
  for (const c of Object.values(containers) as any[]) {
    assert.ok(!c.Environment.some((e: any) => /SECRET|PASSWORD|KEYS$/.test(e.Name)), c.Name);
  }
});

test('the task: two Fargate tasks behind an ALB, the firehose by default, the bulk paths to the bulk container', () => {
  template.hasResourceProperties('AWS::ECS::Service', {
    DesiredCount: 2,
    LaunchType: 'FARGATE',
    DeploymentConfiguration: Match.objectLike({ MinimumHealthyPercent: 100, DeploymentCircuitBreaker: { Enable: true, Rollback: true } }),
  });
  template.hasResourceProperties('AWS::ECS::Cluster', { ClusterSettings: [{ Name: 'containerInsights', Value: 'enhanced' }] });
  template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
    Scheme: 'internet-facing',
    LoadBalancerAttributes: Match.arrayWith([{ Key: 'idle_timeout.timeout_seconds', Value: '3600' }, { Key: 'access_logs.s3.enabled', Value: 'true' }]),
  });
  for (const port of [2584, 2585]) {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      HealthCheckPath: '/xrpc/_health',
      Port: port,
      TargetGroupAttributes: Match.arrayWith([{ Key: 'deregistration_delay.timeout_seconds', Value: '35' }]),
    });
  }
  template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
    Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: BULK_PATHS } }],
  });
  const subnets = template.findResources('AWS::EC2::Subnet');
  const azs = new Set(Object.values(subnets).map((s: any) => JSON.stringify(s.Properties.AvailabilityZone)));
  assert.equal(azs.size, 2, 'tasks spread over two AZs');
  const task = Object.values(template.findResources('AWS::ECS::TaskDefinition'))[0] as any;
  const containers = task.Properties.ContainerDefinitions.map((c: any) => [c.Name, c.Command, c.PortMappings[0].ContainerPort]);
  assert.deepEqual(containers, [['firehose', ['firehose'], 2584], ['bulk', ['bulk'], 2585]]);
  // Egress is what the tasks need (HTTPS out) and no more.
  const groups = Object.entries(template.findResources('AWS::EC2::SecurityGroup')) as [string, any][];
  const tasks = groups.find(([id]) => id.startsWith('FirehoseSecurityGroup'))![1];
  assert.deepEqual(tasks.Properties.SecurityGroupEgress.map((e: any) => [e.IpProtocol, e.FromPort, e.ToPort, e.CidrIp]), [['tcp', 443, 443, '0.0.0.0/0']]);
});

test('the firehose image is built for the tasks\' architecture, from the project Dockerfile', () => {
  for (const architecture of ['arm64', 'x86_64'] as const) {
    const { template, assets } = synth({ architecture });
    const task = Object.values(template.findResources('AWS::ECS::TaskDefinition'))[0] as any;
    const cpu = task.Properties.RuntimePlatform.CpuArchitecture;
    const images = Object.values(assets().dockerImages) as any[];
    assert.equal(images.length, 1);
    assert.equal(images[0].source.dockerFile, 'infra/docker/Dockerfile');
    assert.equal(cpu, architecture === 'arm64' ? 'ARM64' : 'X86_64');
    assert.equal(images[0].source.platform, architecture === 'arm64' ? 'linux/arm64' : 'linux/amd64');
  }
});

test('least privilege: the task role reads no secret and no sealed key, and writes only events, kv, blobs, imported blocks and heads', () => {
  const policies = template.findResources('AWS::IAM::Policy');
  const taskPolicy = Object.entries(policies).find(([id]) => id.startsWith('FirehoseTaskTaskRole')) as [string, any];
  const statements = taskPolicy[1].Properties.PolicyDocument.Statement as any[];
  const text = JSON.stringify(statements);
  assert.ok(!text.includes('secretsmanager'), 'secrets reach only the bulk container, through the execution role');
  const writes = statements.filter((s) => [].concat(s.Action).some((a: string) => a.includes('PutItem')));
  assert.deepEqual(
    writes.map((w) => JSON.stringify(w.Resource).match(/Table(events|kv|blocks|counters)/)![1]).sort(),
    ['blocks', 'counters', 'events', 'kv'],
  );
  const repos = statements.filter((s) => JSON.stringify(s.Resource).includes('Tablerepos'));
  assert.equal(repos.length, 2, 'two statements on repos: projected reads, head updates');
  const reads = repos.find((r) => ([] as string[]).concat(r.Action).includes('dynamodb:GetItem'));
  assert.deepEqual([].concat(reads.Action).sort(), ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:Query']);
  assert.deepEqual(reads.Condition, {
    'ForAllValues:StringEquals': { 'dynamodb:Attributes': REPO_RECORD_ATTRIBUTES },
    StringEqualsIfExists: { 'dynamodb:Select': 'SPECIFIC_ATTRIBUTES' },
  });
  const updates = repos.find((r) => r !== reads);
  assert.deepEqual(updates.Action, 'dynamodb:UpdateItem');
  assert.deepEqual(updates.Condition, { 'ForAllValues:StringEquals': { 'dynamodb:Attributes': REPO_HEAD_ATTRIBUTES } });
  assert.ok(!REPO_RECORD_ATTRIBUTES.includes('keys') && !REPO_HEAD_ATTRIBUTES.includes('keys'));
  // The execution role reads exactly one secret: the JWT secret the bulk container gets.
  const exec = Object.entries(policies).find(([id]) => id.startsWith('FirehoseTaskExecutionRole')) as [string, any];
  const secretReads = (exec[1].Properties.PolicyDocument.Statement as any[]).filter((s) => JSON.stringify(s.Action).includes('secretsmanager'));
  assert.equal(secretReads.length, 1);
  assert.ok(JSON.stringify(secretReads[0].Resource).includes('JwtSecret'));
});

test('logs have retention and alarms cover 5xx, throttles, firehose lag and task health', () => {
  const groups = Object.values(template.findResources('AWS::Logs::LogGroup')) as any[];
  assert.ok(groups.length >= 3 && groups.every((g) => g.Properties.RetentionInDays === 30));
  const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')) as any[];
  const names = alarms.map((a) => a.Properties.MetricName);
  for (const m of ['5xx', 'Errors', 'ReadThrottleEvents', 'WriteThrottleEvents', 'FirehoseLag', 'HealthyHostCount']) assert.ok(names.includes(m), `an alarm on ${m}`);
  const tables = tableDefinitions().length;
  assert.equal(names.filter((n) => n === 'ReadThrottleEvents').length, tables, 'throttles alarmed on every table');
  // Every alarm notifies the topic; an e-mail address subscribes when given.
  const topic = Object.keys(template.findResources('AWS::SNS::Topic'))[0];
  for (const a of alarms) assert.deepEqual(a.Properties.AlarmActions, [{ Ref: topic }]);
  assert.equal(Object.keys(template.findResources('AWS::SNS::Subscription')).length, 0);
  template.hasResourceProperties('AWS::SNS::TopicPolicy', {
    PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Action: 'sns:Publish', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
  });
  const mailed = synth({ alarmEmail: 'ops@pds.test' } as any).template;
  mailed.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@pds.test' });
  // The lag metric comes from the firehose's JSON logs (src/firehose/hub.rs logs `lag`).
  const filter = Object.values(template.findResources('AWS::Logs::MetricFilter'))[0] as any;
  assert.equal(filter.Properties.MetricTransformations[0].MetricValue, '$.fields.lag');
  const task = Object.values(template.findResources('AWS::ECS::TaskDefinition'))[0] as any;
  for (const c of task.Properties.ContainerDefinitions) {
    assert.ok(c.Environment.some((e: any) => e.Name === 'ARROBA_LOG_FORMAT' && e.Value === 'json'), c.Name);
  }
});

test('the edge: one hostname and its handle subdomains, Host forwarded, firehose paths to the ALB, DNS records', () => {
  const edge = synth({
    certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/regional',
    edgeCertificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/edge',
    hostedZoneId: 'Z0123456789',
    zoneName: 'example.com',
  } as any);
  const nag = [
    ...Annotations.fromStack(edge.stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*')),
    ...Annotations.fromStack(edge.stack).findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*')),
  ];
  assert.deepEqual(nag.map((e) => e.entry.data), []);
  const t = edge.template;
  const dist = (Object.values(t.findResources('AWS::CloudFront::Distribution'))[0] as any).Properties.DistributionConfig;
  assert.deepEqual(dist.Aliases, ['pds.example.com', '*.pds.example.com']);
  assert.equal(dist.ViewerCertificate.MinimumProtocolVersion, 'TLSv1.2_2021');
  // AllViewerAndCloudFrontHeaders forwards Host (handles resolve by it) and the viewer's address
  // (rate limits count it); CachingDisabled keeps XRPC uncached.
  const allViewer = '33f36d7e-f396-46d9-90e0-52428a34d9dc';
  const cachingDisabled = '4135ea2d-6df8-44a3-9df3-4b5a84be39ad';
  assert.equal(dist.DefaultCacheBehavior.OriginRequestPolicyId, allViewer);
  assert.equal(dist.DefaultCacheBehavior.CachePolicyId, cachingDisabled);
  const functions = Object.values(t.findResources('AWS::Lambda::Function')) as any[];
  const xrpcEnv = functions.map((f) => f.Properties.Environment?.Variables ?? {}).find((v) => v.PDS_JWT_SECRET_ARN);
  assert.equal(xrpcEnv.PDS_CLIENT_IP_HEADER, 'cloudfront-viewer-address', 'the Lambda counts the address CloudFront writes');
  assert.ok(dist.DefaultCacheBehavior.AllowedMethods.includes('POST'));
  const paths = dist.CacheBehaviors.map((b: any) => b.PathPattern).sort();
  assert.deepEqual(paths, [...FIREHOSE_PATHS, ...BULK_PATHS].sort());
  const upload = dist.CacheBehaviors.find((b: any) => b.PathPattern === '/xrpc/com.atproto.repo.uploadBlob');
  assert.ok(upload.AllowedMethods.includes('POST'), 'uploads are POSTed through the edge');
  assert.equal(dist.IPV6Enabled, true);
  const albOriginId = dist.CacheBehaviors[0].TargetOriginId;
  assert.notEqual(albOriginId, dist.DefaultCacheBehavior.TargetOriginId);
  const albOrigin = dist.Origins.find((o: any) => o.Id === albOriginId);
  assert.ok(JSON.stringify(albOrigin.DomainName).includes('Alb'), 'the firehose paths go to the ALB');
  for (const b of dist.CacheBehaviors) assert.equal(b.OriginRequestPolicyId, allViewer);
  // API Gateway accepts both names (custom domains mapped to the API).
  const names = Object.values(t.findResources('AWS::ApiGatewayV2::DomainName')).map((d: any) => d.Properties.DomainName).sort();
  assert.deepEqual(names, ['*.pds.example.com', 'pds.example.com']);
  assert.equal(Object.keys(t.findResources('AWS::ApiGatewayV2::ApiMapping')).length, 2);
  const records = Object.values(t.findResources('AWS::Route53::RecordSet'))
    .filter((r: any) => r.Properties.Type !== 'CNAME')
    .map((r: any) => r.Properties.Name).sort();
  assert.deepEqual(records, ['*.pds.example.com.', 'pds.example.com.']);
  // The ALB listens on HTTPS with the regional certificate.
  t.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 443, Protocol: 'HTTPS' });
});

test('an optional WAF limits requests per IP on the edge (us-east-1 only)', () => {
  const edgeProps = {
    certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/regional',
    edgeCertificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/edge',
  };
  const walled = synth({ ...edgeProps, wafRateLimit: 3000 } as any).template;
  walled.hasResourceProperties('AWS::WAFv2::WebACL', {
    Scope: 'CLOUDFRONT',
    Rules: [Match.objectLike({ Statement: { RateBasedStatement: { Limit: 3000, AggregateKeyType: 'IP' } }, Action: { Block: {} } })],
  });
  const dist = (Object.values(walled.findResources('AWS::CloudFront::Distribution'))[0] as any).Properties.DistributionConfig;
  assert.ok(JSON.stringify(dist.WebACLId).includes('EdgeWaf'));
  assert.equal(Object.keys(template.findResources('AWS::WAFv2::WebACL')).length, 0, 'none by default');
  assert.throws(() => synth({ ...edgeProps, wafRateLimit: 3000, env: { region: 'eu-west-1', account: '123456789012' } } as any), /us-east-1/);
});

test('existing (restored) tables replace the stack\'s own, all or none', () => {
  const names = Object.fromEntries(tableDefinitions().map((d) => [d.suffix, `arroba-r1-${d.suffix}`]));
  const restored = synth({ existingTables: names } as any).template;
  assert.equal(Object.keys(restored.findResources('AWS::DynamoDB::Table')).length, 0);
  const fn = Object.values(restored.findResources('AWS::Lambda::Function'))[0] as any;
  assert.ok(JSON.stringify(fn.Properties.Environment.Variables.ARROBA_TABLE_NAMES).includes('arroba-r1-repos'));
  assert.throws(() => synth({ existingTables: { repos: 'x' } } as any), /existingTables lacks/);
});

test('outputs: every value docs/deploy.md tells an operator to look up', () => {
  const outputs = Object.keys(template.findOutputs('*')).sort();
  assert.deepEqual(outputs, ['AdminPasswordSecretArn', 'AlarmTopicArn', 'BlobBucket', 'FirehoseUrl', 'KeyEncryptionKeysSecretArn', 'PlcRotationKeySecretArn', 'TableNames', 'XrpcUrl']);
});

test('without an edge certificate the stack has no distribution, and an edge needs the regional certificate', () => {
  assert.equal(Object.keys(template.findResources('AWS::CloudFront::Distribution')).length, 0);
  assert.throws(() => synth({ edgeCertificateArn: 'arn:aws:acm:us-east-1:1:certificate/e' } as any), /needs certificateArn/);
});

test('a new certificate: DNS-validated in the zone for hostname and *.hostname, used by the ALB, the API and the edge', () => {
  const created = synth({ hostedZoneId: 'Z0123456789', zoneName: 'example.com', createCertificate: true } as any).template;
  const certs = Object.entries(created.findResources('AWS::CertificateManager::Certificate')) as [string, any][];
  assert.equal(certs.length, 1);
  const [certId, cert] = certs[0];
  assert.equal(cert.Properties.DomainName, 'pds.example.com');
  assert.deepEqual(cert.Properties.SubjectAlternativeNames, ['*.pds.example.com']);
  assert.equal(cert.Properties.ValidationMethod, 'DNS');
  assert.equal(cert.Properties.DomainValidationOptions[0].HostedZoneId, 'Z0123456789');
  const ref = JSON.stringify({ Ref: certId });
  const dist = Object.values(created.findResources('AWS::CloudFront::Distribution'))[0] as any;
  assert.equal(JSON.stringify(dist.Properties.DistributionConfig.ViewerCertificate.AcmCertificateArn), ref);
  created.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 443, Certificates: [{ CertificateArn: { Ref: certId } }] });
  assert.throws(() => synth({ createCertificate: true } as any), /needs hostedZoneId/);
  assert.throws(
    () => synth({ hostedZoneId: 'Z1', zoneName: 'example.com', createCertificate: true, env: { region: 'eu-west-1', account: '123456789012' } } as any),
    /us-east-1/,
  );
});

test('mail: the sender\'s domain is an SES identity, DKIM records go in the zone, the Lambda may send as it', () => {
  const { template } = synth({ hostedZoneId: 'Z0123456789', zoneName: 'example.com' } as any);
  template.hasResourceProperties('AWS::SES::EmailIdentity', { EmailIdentity: 'pds.example.com' });
  const dkim = Object.values(template.findResources('AWS::Route53::RecordSet')).filter((r: any) => r.Properties.Type === 'CNAME');
  assert.equal(dkim.length, 3, 'three DKIM records');
  const functions = Object.values(template.findResources('AWS::Lambda::Function')) as any[];
  const env = functions.map((f) => f.Properties.Environment?.Variables ?? {}).find((v) => v.PDS_JWT_SECRET_ARN);
  assert.equal(env.PDS_EMAIL_SES, 'true');
  assert.equal(env.PDS_EMAIL_FROM_ADDRESS, 'noreply@pds.example.com');
  const policies = JSON.stringify(template.findResources('AWS::IAM::Policy'));
  assert.ok(policies.includes('ses:SendEmail'), 'the Lambda may send');
  const none = synth({ emailFrom: 'none' } as any).template;
  none.resourceCountIs('AWS::SES::EmailIdentity', 0);
  const noneEnv = (Object.values(none.findResources('AWS::Lambda::Function')) as any[])
    .map((f) => f.Properties.Environment?.Variables ?? {}).find((v) => v.PDS_JWT_SECRET_ARN);
  assert.equal(noneEnv.PDS_EMAIL_SES, undefined);
});

