// The CDK app: one stack, parameterised by context (see cdk.json and docs/deploy.md).
import { App, Aspects } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ArrobaStack, propsFromContext } from '../lib/arroba-stack';

const app = new App();
const props = propsFromContext(app);
new ArrobaStack(app, 'Arroba', { ...props, env: { region: app.node.tryGetContext('region') ?? process.env.CDK_DEFAULT_REGION ?? 'us-east-1', account: process.env.CDK_DEFAULT_ACCOUNT } });
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
