// The whole PDS on AWS: the XRPC Lambda behind an HTTP API, the DynamoDB tables (exactly as
// `arroba dynamodb tables --json` defines them, via ../tables.json), the S3 blob bucket, one
// Fargate service whose tasks run the firehose (no secrets) and the bulk container (importRepo,
// uploadBlob and getBlob, bodies Lambda cannot carry) behind an ALB, secrets in Secrets Manager,
// least-privilege roles, log retention and alarms to an SNS topic.
import * as fs from 'fs';
import * as path from 'path';
import {
  App, CfnOutput, Duration, RemovalPolicy, Stack, StackProps,
  aws_apigatewayv2 as apigw, aws_apigatewayv2_integrations as integrations,
  aws_cloudwatch as cw, aws_cloudwatch_actions as cwActions, aws_dynamodb as ddb, aws_ec2 as ec2,
  aws_ecs as ecs, aws_elasticloadbalancingv2 as elbv2, aws_iam as iam, aws_lambda as lambda,
  aws_logs as logs, aws_s3 as s3, aws_secretsmanager as sm, aws_certificatemanager as acm,
  aws_cloudfront as cloudfront, aws_cloudfront_origins as origins, aws_route53 as route53,
  aws_route53_targets as r53targets, aws_ecr_assets as ecrAssets, aws_sns as sns,
  aws_sns_subscriptions as subscriptions, aws_wafv2 as wafv2, aws_ses as ses,
} from 'aws-cdk-lib';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

/** A table definition from `arroba dynamodb tables --json`. */
export interface TableDef {
  suffix: string;
  partition: { name: string; type: 'S' | 'N' | 'B' };
  sort: { name: string; type: 'S' | 'N' | 'B' } | null;
  indexes: { name: string; partition: { name: string; type: 'S' | 'N' | 'B' }; sort: { name: string; type: 'S' | 'N' | 'B' } | null }[];
  ttl: string | null;
}

export interface ArrobaProps extends StackProps {
  /** The PDS hostname (required: nothing defaults to an example domain). */
  hostname: string;
  /** Comma-separated handle domains; empty means `.<hostname>`. */
  handleDomains: string;
  plcUrl: string;
  /** Relays to notify (`PDS_CRAWLERS`), default the main Bluesky relay; `none` for no relay. */
  crawlers: string;
  /**
   * The AppView `app.bsky.*` calls go to (`PDS_BSKY_APP_VIEW_URL`/`_DID`), default Bluesky's;
   * `appViewUrl` `none` for none.
   */
  appViewUrl: string;
  appViewDid: string;
  /** Where reports go (`PDS_REPORT_SERVICE_URL`/`_DID`), default Bluesky's moderation service. */
  reportServiceUrl: string;
  reportServiceDid: string;
  architecture: 'arm64' | 'x86_64';
  /** A directory holding the Lambda `bootstrap` (from `make lambda`). */
  lambdaAsset: string;
  /**
   * The address mail is sent from (`PDS_EMAIL_FROM_ADDRESS`, through SES), default
   * `noreply@<hostname>`; `none` for no mail. Its domain becomes an SES identity (with DKIM
   * records when the stack has the zone).
   */
  emailFrom: string;
  /** Whether sign-ups need an invite code (`PDS_INVITE_REQUIRED`), default true. */
  inviteRequired: boolean;
  /** Largest blob upload in bytes (`PDS_BLOB_UPLOAD_LIMIT`), default 50 MB as the reference
   * PDS distribution sets; uploads go to the bulk container, which streams them. */
  blobUploadLimit: number;
  /** HTTP API throttling for the whole API: steady requests per second and burst. */
  apiRateLimit: number;
  apiBurstLimit: number;
  /** An address to e-mail alarms to (they always go to the `Alarms` SNS topic). */
  alarmEmail?: string;
  /** Requests per 5 minutes per IP above which a WAF on the edge blocks (us-east-1 only). */
  wafRateLimit?: number;
  /** An ACM certificate for the firehose's HTTPS listener; without one it listens on HTTP 80. */
  certificateArn?: string;
  /**
   * An ACM certificate in us-east-1 for `hostname` and `*.hostname`. With it (and
   * `certificateArn`, the regional one) the stack builds the edge: a CloudFront distribution
   * serving both names, XRPC to the API's custom domains, the task's paths to the ALB.
   */
  edgeCertificateArn?: string;
  /** A Route 53 zone (id and name) to create the `hostname` and `*.hostname` alias records in. */
  hostedZoneId?: string;
  zoneName?: string;
  /**
   * Create a DNS-validated certificate for `hostname` and `*.hostname` in the zone instead of
   * passing ARNs (us-east-1 only, where one certificate serves both CloudFront and the region).
   */
  createCertificate?: boolean;
  /**
   * Existing tables to use instead of creating them, by suffix (all of them): restored
   * point-in-time copies (docs/deploy.md, "Restoring from point-in-time recovery").
   */
  existingTables?: Record<string, string>;
}

/** Bluesky's public AppView and moderation service, as the reference PDS distribution sets them. */
export const BSKY_APP_VIEW = { url: 'https://api.bsky.app', did: 'did:web:api.bsky.app' };
export const BSKY_REPORT_SERVICE = { url: 'https://mod.bsky.app', did: 'did:plc:ar7c4by46qjdydhdevvrndac' };

/** The default relay: the reference PDS's default crawler. */
export const MAIN_RELAY = 'https://bsky.network';

/** The paths the task's two containers serve; the rest of /xrpc goes to the Lambda. */
export const FIREHOSE_PATHS = ['com.atproto.sync.subscribeRepos', 'com.atproto.sync.getRepo', 'com.atproto.sync.getCheckout'].map((m) => `/xrpc/${m}`);
export const BULK_PATHS = ['com.atproto.repo.importRepo', 'com.atproto.repo.uploadBlob', 'com.atproto.sync.getBlob'].map((m) => `/xrpc/${m}`);

/** The repo-item attributes a task may read: everything but the sealed account keys. */
export const REPO_RECORD_ATTRIBUTES = ['did', 'handle', 'head', 'rev', 'status', 'created_at', 'list_pk'];
/** What an import writes of a repo item (with its key): the head and its rev. */
export const REPO_HEAD_ATTRIBUTES = ['did', 'head', 'rev'];

export function propsFromContext(app: App): ArrobaProps {
  // An empty value counts as unset (`make deploy` passes variables that may be empty).
  const ctx = (key: string, fallback?: string): string => {
    const given = app.node.tryGetContext(key);
    const v = given === undefined || given === '' ? fallback : given;
    if (v === undefined) throw new Error(`missing context value ${key} (-c ${key}=…)`);
    return String(v);
  };
  const optional = (key: string): string | undefined => {
    const v = app.node.tryGetContext(key);
    return v === undefined || v === '' ? undefined : String(v);
  };
  const arch = ctx('architecture', 'arm64');
  if (arch !== 'arm64' && arch !== 'x86_64') throw new Error('architecture must be arm64 or x86_64');
  const waf = optional('wafRateLimit');
  return {
    hostname: ctx('hostname'),
    handleDomains: optional('handleDomains') ?? '',
    plcUrl: ctx('plcUrl', 'https://plc.directory'),
    crawlers: ctx('crawlers', MAIN_RELAY),
    appViewUrl: ctx('appViewUrl', BSKY_APP_VIEW.url),
    appViewDid: ctx('appViewDid', BSKY_APP_VIEW.did),
    reportServiceUrl: ctx('reportServiceUrl', BSKY_REPORT_SERVICE.url),
    reportServiceDid: ctx('reportServiceDid', BSKY_REPORT_SERVICE.did),
    emailFrom: ctx('emailFrom', `noreply@${ctx('hostname')}`),
    architecture: arch,
    lambdaAsset: ctx('lambdaAsset', path.join(__dirname, '..', '..', '..', 'lambda-placeholder')),
    inviteRequired: ctx('inviteRequired', 'true') === 'true',
    blobUploadLimit: Number(ctx('blobUploadLimit', '52428800')),
    apiRateLimit: Number(ctx('apiRateLimit', '200')),
    apiBurstLimit: Number(ctx('apiBurstLimit', '400')),
    alarmEmail: optional('alarmEmail'),
    wafRateLimit: waf === undefined ? undefined : Number(waf),
    certificateArn: optional('certificateArn'),
    edgeCertificateArn: optional('edgeCertificateArn'),
    hostedZoneId: optional('hostedZoneId'),
    zoneName: optional('zoneName'),
    createCertificate: String(app.node.tryGetContext('createCertificate') ?? 'false') === 'true',
    existingTables: optional('existingTables') === undefined ? undefined : JSON.parse(optional('existingTables')!),
  };
}

const attrType = (t: 'S' | 'N' | 'B') =>
  t === 'S' ? ddb.AttributeType.STRING : t === 'N' ? ddb.AttributeType.NUMBER : ddb.AttributeType.BINARY;

export function tableDefinitions(): TableDef[] {
  return JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'tables.json'), 'utf8'));
}

export class ArrobaStack extends Stack {
  constructor(scope: Construct, id: string, props: ArrobaProps) {
    super(scope, id, props);
    if (!props.hostname) throw new Error('hostname is required');

    // Tables: on-demand, point-in-time recovery, deletion protection, TTL where defined. Their
    // names are CloudFormation's (passed in ARROBA_TABLE_NAMES), so a first deploy that rolls
    // back leaves retained tables that never block the next attempt.
    const tables: Record<string, ddb.ITable> = {};
    const defs = tableDefinitions();
    if (props.existingTables) {
      const missing = defs.map((d) => d.suffix).filter((s) => !props.existingTables![s]);
      if (missing.length) throw new Error(`existingTables lacks ${missing.join(', ')}`);
    }
    for (const def of defs) {
      if (props.existingTables) {
        tables[def.suffix] = ddb.Table.fromTableName(this, `Table-${def.suffix}`, props.existingTables[def.suffix]);
        continue;
      }
      const table = new ddb.Table(this, `Table-${def.suffix}`, {
        partitionKey: { name: def.partition.name, type: attrType(def.partition.type) },
        sortKey: def.sort ? { name: def.sort.name, type: attrType(def.sort.type) } : undefined,
        billingMode: ddb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecovery: true,
        deletionProtection: true,
        timeToLiveAttribute: def.ttl ?? undefined,
        encryption: ddb.TableEncryption.AWS_MANAGED,
        removalPolicy: RemovalPolicy.RETAIN,
      });
      for (const index of def.indexes) {
        table.addGlobalSecondaryIndex({
          indexName: index.name,
          partitionKey: { name: index.partition.name, type: attrType(index.partition.type) },
          sortKey: index.sort ? { name: index.sort.name, type: attrType(index.sort.type) } : undefined,
          projectionType: ddb.ProjectionType.KEYS_ONLY,
        });
      }
      tables[def.suffix] = table;
    }
    const tableNames = this.toJsonString(Object.fromEntries(Object.entries(tables).map(([s, t]) => [s, t.tableName])));

    // Blobs: private, encrypted, TLS only, access-logged; incomplete uploads cleaned up.
    const logBucket = new s3.Bucket(this, 'AccessLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.OBJECT_WRITER,
      lifecycleRules: [{ expiration: Duration.days(90), abortIncompleteMultipartUploadAfter: Duration.days(1) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const blobs = new s3.Bucket(this, 'Blobs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      versioned: true,
      serverAccessLogsBucket: logBucket,
      serverAccessLogsPrefix: 'blobs/',
      lifecycleRules: [
        // Temporary blobs are swept by the PDS; these catch what a crash leaves behind.
        { abortIncompleteMultipartUploadAfter: Duration.days(1), noncurrentVersionExpiration: Duration.days(7) },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // Secrets: generated in Secrets Manager in the form the binaries read, never in the
    // template or plain environment values.
    const jwtSecret = new sm.Secret(this, 'JwtSecret', { generateSecretString: { passwordLength: 48, excludePunctuation: true } });
    const adminPassword = new sm.Secret(this, 'AdminPassword', { generateSecretString: { passwordLength: 32, excludePunctuation: true } });
    // The key-encryption key: `{"id": "k1", "key": "<64 hex digits>"}`, a form
    // ARROBA_KEY_ENCRYPTION_KEYS accepts (src/storage/sealed.rs). Losing it loses every
    // account's keys, so it outlives the stack.
    const hexOnly = { excludeUppercase: true, excludePunctuation: true, includeSpace: false, excludeCharacters: 'ghijklmnopqrstuvwxyz' };
    const keyEncryptionKeys = new sm.Secret(this, 'KeyEncryptionKeys', {
      description: 'Seals account keys: {"id","key"} (64 hex digits). Keep it; rotation in docs/deploy.md',
      generateSecretString: { secretStringTemplate: JSON.stringify({ id: 'k1' }), generateStringKey: 'key', passwordLength: 64, ...hexOnly },
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // The operator's PLC rotation key, listed in every new DID: 64 lowercase hex digits is a valid
    // k256 private key (all but a 2^-128 fraction of them), so Secrets Manager can generate it.
    const plcRotationKey = new sm.Secret(this, 'PlcRotationKey', {
      description: 'k256 private key, 64 hex digits: the operator rotation key in every DID this PDS creates (docs/identity.md)',
      generateSecretString: { passwordLength: 64, ...hexOnly },
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const crawlers = props.crawlers === 'none' ? '' : props.crawlers;
    const common: Record<string, string> = {
      PDS_HOSTNAME: props.hostname,
      PDS_STORAGE: 'dynamodb',
      ARROBA_TABLE_NAMES: tableNames,
      RUST_LOG: 'info',
      // JSON logs: the firehose lag metric filter reads the `lag` field.
      ARROBA_LOG_FORMAT: 'json',
    };
    const server: Record<string, string> = {
      ...common,
      PDS_DID_PLC_URL: props.plcUrl,
      PDS_BLOBSTORE_S3_BUCKET: blobs.bucketName,
      PDS_BLOB_UPLOAD_LIMIT: String(props.blobUploadLimit),
    };

    // The XRPC Lambda. Secrets arrive as ARNs, read at start-up (src/bin/lambda.rs).
    const lambdaLogs = new logs.LogGroup(this, 'XrpcLogs', { retention: logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY });
    const xrpcRole = new iam.Role(this, 'XrpcRole', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    lambdaLogs.grantWrite(xrpcRole);
    const xrpc = new lambda.Function(this, 'Xrpc', {
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: props.architecture === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64,
      handler: 'bootstrap',
      code: lambda.Code.fromAsset(props.lambdaAsset),
      memorySize: 1024,
      timeout: Duration.seconds(30),
      role: xrpcRole,
      logGroup: lambdaLogs,
      environment: {
        ...server,
        PDS_SERVICE_HANDLE_DOMAINS: props.handleDomains || `.${props.hostname}`,
        PDS_INVITE_REQUIRED: String(props.inviteRequired),
        ...(props.appViewUrl === 'none' ? {} : { PDS_BSKY_APP_VIEW_URL: props.appViewUrl, PDS_BSKY_APP_VIEW_DID: props.appViewDid }),
        ...(props.reportServiceUrl === 'none' ? {} : { PDS_REPORT_SERVICE_URL: props.reportServiceUrl, PDS_REPORT_SERVICE_DID: props.reportServiceDid }),
        PDS_JWT_SECRET_ARN: jwtSecret.secretArn,
        PDS_ADMIN_PASSWORD_ARN: adminPassword.secretArn,
        ARROBA_KEY_ENCRYPTION_KEYS_ARN: keyEncryptionKeys.secretArn,
        PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX_ARN: plcRotationKey.secretArn,
      },
    });
    for (const t of Object.values(tables)) t.grantReadWriteData(xrpcRole);
    blobs.grantReadWrite(xrpcRole);
    for (const s of [jwtSecret, adminPassword, keyEncryptionKeys, plcRotationKey]) s.grantRead(xrpcRole);

    // The HTTP API (payload limit 10 MB; Lambda's own 6 MB applies, which is why uploads go to
    // the bulk container), throttled as a whole.
    const apiLogs = new logs.LogGroup(this, 'ApiLogs', { retention: logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY });
    const api = new apigw.HttpApi(this, 'Api', {
      defaultIntegration: new integrations.HttpLambdaIntegration('XrpcIntegration', xrpc),
    });
    const stage = api.defaultStage?.node.defaultChild as apigw.CfnStage;
    stage.accessLogSettings = {
      destinationArn: apiLogs.logGroupArn,
      format: JSON.stringify({ requestId: '$context.requestId', ip: '$context.identity.sourceIp', method: '$context.httpMethod', path: '$context.path', status: '$context.status', latency: '$context.responseLatency' }),
    };
    stage.defaultRouteSettings = { throttlingRateLimit: props.apiRateLimit, throttlingBurstLimit: props.apiBurstLimit };

    // The task: Fargate in two AZs behind an ALB with a WebSocket-friendly idle timeout.
    const flowLogs = new logs.LogGroup(this, 'VpcFlowLogs', { retention: logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY });
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC }],
      flowLogs: {
        all: { trafficType: ec2.FlowLogTrafficType.REJECT, destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs) },
      },
    });
    const cluster = new ecs.Cluster(this, 'Cluster', { vpc, containerInsightsV2: ecs.ContainerInsights.ENHANCED });
    const firehoseLogs = new logs.LogGroup(this, 'FirehoseLogs', { retention: logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY });
    const task = new ecs.FargateTaskDefinition(this, 'FirehoseTask', {
      cpu: 512,
      memoryLimitMiB: 1024,
      runtimePlatform: {
        cpuArchitecture: props.architecture === 'arm64' ? ecs.CpuArchitecture.ARM64 : ecs.CpuArchitecture.X86_64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    const image = ecs.ContainerImage.fromAsset(path.join(__dirname, '..', '..', '..', '..'), {
      file: 'infra/docker/Dockerfile',
      // The image must match the tasks' CPU whatever the deploying machine is (an arm64 image
      // from an x86_64 host needs Docker's buildx with qemu binfmt; docs/deploy.md).
      platform: props.architecture === 'arm64' ? ecrAssets.Platform.LINUX_ARM64 : ecrAssets.Platform.LINUX_AMD64,
      exclude: ['target', '.local', '.git', 'infra/cdk/node_modules', 'infra/cdk/cdk.out', 'infra/cdk/dist'],
    });
    // The firehose gets no secret at all: it never signs or checks a session.
    const firehose = task.addContainer('firehose', {
      image,
      command: ['firehose'],
      environment: { ...common, PDS_CRAWLERS: crawlers },
      portMappings: [{ containerPort: 2584 }],
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'firehose', logGroup: firehoseLogs }),
      stopTimeout: Duration.seconds(30),
      // With DynamoDB and S3 configured the task writes nothing locally.
      readonlyRootFilesystem: true,
    });
    // The bulk container checks sessions, so it gets the JWT secret, and only that.
    const bulk = task.addContainer('bulk', {
      image,
      command: ['bulk'],
      environment: server,
      secrets: { PDS_JWT_SECRET: ecs.Secret.fromSecretsManager(jwtSecret) },
      portMappings: [{ containerPort: 2585 }],
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'bulk', logGroup: firehoseLogs }),
      stopTimeout: Duration.seconds(30),
      readonlyRootFilesystem: true,
    });
    // The task role: the log and blocks to read, skipped markers to write, blob records and
    // bytes for the bulk container, and repo records without their sealed keys (the condition
    // allows only projected reads of the other attributes). An imported repo's blocks, its
    // `#sync` (a sequence number and an event) and its new head (the head and rev attributes
    // only) are the bulk container's too. The block collector scans the log and the blocks and
    // deletes unused blocks conditionally (docs/storage.md). No secret, ever.
    for (const name of ['events', 'blocks', 'counters']) tables[name].grantReadData(task.taskRole);
    for (const name of ['events', 'blocks', 'counters']) tables[name].grantWriteData(task.taskRole);
    tables['kv'].grantReadWriteData(task.taskRole);
    task.taskRole.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['dynamodb:UpdateItem'],
      resources: [tables['repos'].tableArn],
      conditions: { 'ForAllValues:StringEquals': { 'dynamodb:Attributes': REPO_HEAD_ATTRIBUTES } },
    }));
    blobs.grantReadWrite(task.taskRole);
    task.taskRole.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query'],
      resources: [tables['repos'].tableArn, `${tables['repos'].tableArn}/index/*`],
      conditions: {
        'ForAllValues:StringEquals': { 'dynamodb:Attributes': REPO_RECORD_ATTRIBUTES },
        StringEqualsIfExists: { 'dynamodb:Select': 'SPECIFIC_ATTRIBUTES' },
      },
    }));

    const albSg = new ec2.SecurityGroup(this, 'AlbSecurityGroup', { vpc, description: 'public firehose and bulk paths', allowAllOutbound: false });
    const alb = new elbv2.ApplicationLoadBalancer(this, 'Alb', { vpc, internetFacing: true, securityGroup: albSg, idleTimeout: Duration.seconds(3600), dropInvalidHeaderFields: true });
    alb.logAccessLogs(logBucket, 'alb');
    // Certificates: existing ones by ARN, or a new one validated in the zone.
    const zone = props.hostedZoneId && props.zoneName
      ? route53.HostedZone.fromHostedZoneAttributes(this, 'Zone', { hostedZoneId: props.hostedZoneId, zoneName: props.zoneName })
      : undefined;

    // Mail: the sender's domain as an SES identity (Easy DKIM; the records go in the zone when
    // the stack has it, else docs/deploy.md says what to add), and the Lambda may send as it.
    if (props.emailFrom !== 'none') {
      const domain = props.emailFrom.split('@')[1];
      if (!domain) throw new Error(`emailFrom ${props.emailFrom} is not an e-mail address`);
      const identity = new ses.EmailIdentity(this, 'EmailIdentity', { identity: ses.Identity.domain(domain) });
      if (zone && (domain === props.zoneName || domain.endsWith(`.${props.zoneName}`))) {
        identity.dkimRecords.forEach((record, i) => new route53.CnameRecord(this, `DkimRecord${i}`, {
          zone, recordName: record.name, domainName: record.value,
        }));
      }
      identity.grantSendEmail(xrpcRole);
      xrpc.addEnvironment('PDS_EMAIL_SES', 'true');
      xrpc.addEnvironment('PDS_EMAIL_FROM_ADDRESS', props.emailFrom);
    }
    let certificate: acm.ICertificate | undefined;
    let edgeCertificateArn = props.edgeCertificateArn;
    if (props.certificateArn) {
      certificate = acm.Certificate.fromCertificateArn(this, 'Certificate', props.certificateArn);
    } else if (props.createCertificate) {
      if (!zone) throw new Error('createCertificate needs hostedZoneId and zoneName');
      if (this.region !== 'us-east-1') throw new Error('createCertificate works in us-east-1; elsewhere pass certificateArn and edgeCertificateArn');
      const created = new acm.Certificate(this, 'Certificate', {
        domainName: props.hostname,
        subjectAlternativeNames: [`*.${props.hostname}`],
        validation: acm.CertificateValidation.fromDns(zone),
      });
      certificate = created;
      edgeCertificateArn = edgeCertificateArn ?? created.certificateArn;
    }
    const listener = certificate
      ? alb.addListener('Https', { port: 443, certificates: [certificate], sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS })
      : alb.addListener('Http', { port: 80 });
    albSg.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(certificate ? 443 : 80), 'relays, consumers and clients');
    const serviceSg = new ec2.SecurityGroup(this, 'FirehoseSecurityGroup', { vpc, description: 'firehose tasks', allowAllOutbound: false });
    serviceSg.addIngressRule(albSg, ec2.Port.tcp(2584), 'firehose, from the load balancer');
    serviceSg.addIngressRule(albSg, ec2.Port.tcp(2585), 'bulk, from the load balancer');
    serviceSg.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'DynamoDB, S3, ECR, CloudWatch, the PLC directory and relays over HTTPS');
    const service = new ecs.FargateService(this, 'Firehose', {
      cluster,
      taskDefinition: task,
      desiredCount: 2,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      assignPublicIp: true,
      securityGroups: [serviceSg],
      circuitBreaker: { rollback: true },
    });
    const health = { path: '/xrpc/_health', healthyHttpCodes: '200', interval: Duration.seconds(15) };
    const firehoseTargets = listener.addTargets('Firehose', {
      port: 2584,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [service.loadBalancerTarget({ containerName: firehose.containerName, containerPort: 2584 })],
      healthCheck: health,
      deregistrationDelay: Duration.seconds(35),
    });
    const bulkTargets = listener.addTargets('Bulk', {
      port: 2585,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [service.loadBalancerTarget({ containerName: bulk.containerName, containerPort: 2585 })],
      healthCheck: health,
      deregistrationDelay: Duration.seconds(35),
      priority: 10,
      conditions: [elbv2.ListenerCondition.pathPatterns(BULK_PATHS)],
    });

    // Alarms, all to one topic (and an e-mail address when given): 5xx, errors, DynamoDB
    // throttling as DynamoDB reports it per table, firehose lag, task health.
    const alarmTopic = new sns.Topic(this, 'Alarms');
    alarmTopic.addToResourcePolicy(new iam.PolicyStatement({
      effect: iam.Effect.DENY,
      principals: [new iam.AnyPrincipal()],
      actions: ['sns:Publish'],
      resources: [alarmTopic.topicArn],
      conditions: { Bool: { 'aws:SecureTransport': 'false' } },
    }));
    if (props.alarmEmail) alarmTopic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    const notify = new cwActions.SnsAction(alarmTopic);
    const alarm = (id: string, metric: cw.IMetric, threshold: number) =>
      new cw.Alarm(this, id, { metric, threshold, evaluationPeriods: 3, comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD, treatMissingData: cw.TreatMissingData.NOT_BREACHING })
        .addAlarmAction(notify);
    alarm('Xrpc5xx', api.metricServerError({ period: Duration.minutes(1) }), 5);
    alarm('XrpcErrors', xrpc.metricErrors({ period: Duration.minutes(1) }), 1);
    for (const [name, t] of Object.entries(tables)) {
      for (const metric of ['ReadThrottleEvents', 'WriteThrottleEvents']) {
        alarm(`${metric}-${name}`, t.metric(metric, { period: Duration.minutes(1), statistic: 'Sum' }), 1);
      }
    }
    const lag = new logs.MetricFilter(this, 'FirehoseLagFilter', {
      logGroup: firehoseLogs,
      metricNamespace: 'Arroba',
      metricName: 'FirehoseLag',
      filterPattern: logs.FilterPattern.exists('$.fields.lag'),
      metricValue: '$.fields.lag',
    });
    alarm('FirehoseLag', lag.metric({ statistic: 'Maximum', period: Duration.minutes(1) }), 1000);
    for (const [id, targets] of [['FirehoseUnhealthy', firehoseTargets], ['BulkUnhealthy', bulkTargets]] as const) {
      new cw.Alarm(this, id, {
        metric: targets.metrics.healthyHostCount({ statistic: 'Minimum', period: Duration.minutes(1) }),
        threshold: 1,
        evaluationPeriods: 3,
        comparisonOperator: cw.ComparisonOperator.LESS_THAN_THRESHOLD,
        treatMissingData: cw.TreatMissingData.BREACHING,
      }).addAlarmAction(notify);
    }

    // The edge: one hostname (and its handle subdomains) for XRPC and the task's paths.
    // CloudFront forwards the viewer's Host, because the PDS answers /.well-known/atproto-did by
    // it; API Gateway accepts that Host through custom domains for both names. The firehose, the
    // whole-repo exports (responses beyond Lambda's 6 MB) and the bulk paths go to the ALB.
    if (edgeCertificateArn) {
      if (!certificate) throw new Error('edgeCertificateArn needs certificateArn (the regional certificate for the API and the ALB)');
      const names = [props.hostname, `*.${props.hostname}`];
      xrpc.addEnvironment('PDS_CLIENT_IP_HEADER', 'cloudfront-viewer-address');
      const domains = names.map((domainName, i) => {
        const domain = new apigw.DomainName(this, `ApiDomain${i}`, { domainName, certificate });
        new apigw.ApiMapping(this, `ApiMapping${i}`, { api, domainName: domain, stage: api.defaultStage });
        return domain;
      });
      // AllViewerAndCloudFrontHeaders adds CloudFront-Viewer-Address, which CloudFront sets on
      // every request: the client address the rate limits count (docs/xrpc.md).
      const passThrough = {
        cachePolicy: cloudfront.CachePolicy.CACHING_DISABLED,
        originRequestPolicy: cloudfront.OriginRequestPolicy.ALL_VIEWER_AND_CLOUDFRONT_2022,
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
      };
      // 60 s for the first byte (CloudFront's most without a quota increase): an import answers when
      // its repo is written.
      const albOrigin = new origins.LoadBalancerV2Origin(alb, {
        protocolPolicy: cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
        readTimeout: Duration.seconds(60),
      });
      let webAclId: string | undefined;
      if (props.wafRateLimit !== undefined) {
        if (this.region !== 'us-east-1') throw new Error('wafRateLimit needs the stack in us-east-1 (CloudFront WAF rules live there)');
        const acl = new wafv2.CfnWebACL(this, 'EdgeWaf', {
          scope: 'CLOUDFRONT',
          defaultAction: { allow: {} },
          visibilityConfig: { cloudWatchMetricsEnabled: true, metricName: 'arroba-edge', sampledRequestsEnabled: true },
          rules: [{
            name: 'rate-per-ip',
            priority: 0,
            action: { block: {} },
            statement: { rateBasedStatement: { limit: props.wafRateLimit, aggregateKeyType: 'IP' } },
            visibilityConfig: { cloudWatchMetricsEnabled: true, metricName: 'arroba-rate-per-ip', sampledRequestsEnabled: true },
          }],
        });
        webAclId = acl.attrArn;
      }
      const edge = new cloudfront.Distribution(this, 'Edge', {
        domainNames: names,
        certificate: acm.Certificate.fromCertificateArn(this, 'EdgeCertificate', edgeCertificateArn),
        minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
        enableIpv6: true,
        webAclId,
        defaultBehavior: {
          origin: new origins.HttpOrigin(domains[0].regionalDomainName, { protocolPolicy: cloudfront.OriginProtocolPolicy.HTTPS_ONLY }),
          allowedMethods: cloudfront.AllowedMethods.ALLOW_ALL,
          ...passThrough,
        },
        additionalBehaviors: Object.fromEntries([
          ...FIREHOSE_PATHS.map((p) => [p, { origin: albOrigin, ...passThrough }]),
          ...BULK_PATHS.map((p) => [p, { origin: albOrigin, allowedMethods: cloudfront.AllowedMethods.ALLOW_ALL, ...passThrough }]),
        ]),
        enableLogging: true,
        logBucket,
        logFilePrefix: 'cloudfront/',
      });
      if (zone) {
        names.forEach((recordName, i) => new route53.ARecord(this, `EdgeRecord${i}`, {
          zone, recordName, target: route53.RecordTarget.fromAlias(new r53targets.CloudFrontTarget(edge)),
        }));
      }
      new CfnOutput(this, 'EdgeDomain', { value: edge.distributionDomainName, description: 'Point hostname and *.hostname here (CNAME or alias) when Route 53 records were not created' });
    }

    new CfnOutput(this, 'XrpcUrl', { value: api.apiEndpoint, description: 'The HTTP API (XRPC through the Lambda)' });
    new CfnOutput(this, 'FirehoseUrl', { value: `${certificate ? 'wss' : 'ws'}://${alb.loadBalancerDnsName}/xrpc/com.atproto.sync.subscribeRepos` });
    new CfnOutput(this, 'AdminPasswordSecretArn', { value: adminPassword.secretArn, description: 'The admin password (arroba admin, pdsadmin)' });
    new CfnOutput(this, 'KeyEncryptionKeysSecretArn', { value: keyEncryptionKeys.secretArn, description: 'Back it up: it seals every account key' });
    new CfnOutput(this, 'PlcRotationKeySecretArn', { value: plcRotationKey.secretArn, description: 'Back it up: the operator rotation key of every DID' });
    new CfnOutput(this, 'AlarmTopicArn', { value: alarmTopic.topicArn, description: 'Subscribe to get alarms' });
    new CfnOutput(this, 'BlobBucket', { value: blobs.bucketName });
    new CfnOutput(this, 'TableNames', { value: tableNames });

    // cdk-nag findings we accept, each with its reason.
    NagSuppressions.addStackSuppressions(this, [
      { id: 'AwsSolutions-IAM5', reason: 'DynamoDB grants include the tables\' index/* ARNs and S3 grants objects under the bucket; both are scoped to these resources.' },
      { id: 'AwsSolutions-SMG4', reason: 'The JWT secret, admin password, key-encryption keys and PLC rotation key are rotated by the operator (rotation invalidates sessions, must keep old KEKs, or needs a PLC operation per DID); docs/deploy.md describes it.' },
      { id: 'AwsSolutions-APIG4', reason: 'XRPC methods authenticate themselves (session JWTs, admin Basic auth); most are public by protocol.' },
      { id: 'AwsSolutions-EC23', reason: 'The firehose is a public endpoint by design: relays and consumers connect from anywhere.' },
      { id: 'AwsSolutions-CFR1', reason: 'A PDS serves its users and relays worldwide; no geo restriction.' },
      { id: 'AwsSolutions-CFR2', reason: 'The WAF is optional (wafRateLimit): the PDS rate-limits itself and the API is throttled; WAF bills per request.' },
      { id: 'AwsSolutions-ECS2', reason: 'Environment variables hold only non-secret settings; the one secret (the bulk container\'s JWT secret) is an ECS secret from Secrets Manager.' },
      { id: 'AwsSolutions-ECS4', reason: 'Container Insights is on, in its enhanced mode (containerInsightsV2), which this cdk-nag version does not recognise.' },
      { id: 'AwsSolutions-SNS2', reason: 'Alarm notifications carry no sensitive data, and CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key (a customer key would cost $1 a month).' },
    ]);
  }
}
