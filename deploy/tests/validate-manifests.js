#!/usr/bin/env node
// Validates rendered agentd Kubernetes manifests offline:
//   1. every object against the Kubernetes JSON schemas (npm kubernetes-models), and
//   2. the agentd rules below (what a schema cannot know: probes, drain time, secrets, ...).
// Two shapes: a StatefulSet of RocksDB shards (one PVC per pod, never autoscaled), or a
// Deployment of stateless replicas on the PostgreSQL store (emptyDir data dir, a
// HorizontalPodAutoscaler, the DSN from a Secret).
//
//   node validate-manifests.js --label NAME [--allow-dev-secrets] [--write-config FILE] RENDERED.yaml
//
// The npm packages are looked up in $AGENTD_K8S_VALIDATE_DIR/node_modules (installed there by
// install-validator.sh). --allow-dev-secrets accepts Secret objects whose every value contains
// "not-a-secret" (the dev overlay's generated, deliberately fake bootstrap key); without it a
// rendered Secret is an error: real Secrets are created by the operator, never committed.
// --write-config writes the agentd.yaml held by the ConfigMap to FILE (the test starts agentd
// with it). Exit 0 when everything passes, 1 when anything fails, 2 on a usage error.
'use strict';

const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

function usage(message) {
  console.error(`validate-manifests: ${message}`);
  console.error('usage: node validate-manifests.js --label NAME [--allow-dev-secrets] ' +
                '[--write-config FILE] RENDERED.yaml');
  process.exit(2);
}

const args = { label: '', allowDevSecrets: false, writeConfig: '', file: '' };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--label') args.label = process.argv[++i] || usage('--label needs a value');
  else if (a === '--allow-dev-secrets') args.allowDevSecrets = true;
  else if (a === '--write-config') args.writeConfig = process.argv[++i] || usage('--write-config needs a value');
  else if (a.startsWith('-')) usage(`unknown option ${a}`);
  else if (!args.file) args.file = a;
  else usage(`unexpected argument ${a}`);
}
if (!args.file) usage('no rendered manifest file given');
if (!args.label) args.label = path.basename(args.file);

const modulesDir = process.env.AGENTD_K8S_VALIDATE_DIR;
if (!modulesDir) usage('AGENTD_K8S_VALIDATE_DIR is not set (run install-validator.sh)');
const requireDep = createRequire(path.join(path.resolve(modulesDir), 'package.json'));
let yaml;
try {
  yaml = requireDep('js-yaml');
  requireDep('kubernetes-models/v1');
} catch (err) {
  console.error(`validate-manifests: npm packages missing in ${modulesDir}: ${err.message.split('\n')[0]}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Reporting.
let passed = 0;
let failed = 0;
function ok(what) { passed++; console.log(`ok   - [${args.label}] ${what}`); }
function fail(what) { failed++; console.log(`FAIL - [${args.label}] ${what}`); }
function check(cond, what, why) { if (cond) ok(what); else fail(why ? `${what}: ${why}` : what); return cond; }

// ---------------------------------------------------------------------------------------------
// 1. Schemas.
let docs;
try {
  docs = yaml.loadAll(fs.readFileSync(args.file, 'utf8')).filter((d) => d != null);
} catch (err) {
  fail(`YAML does not parse: ${err.message.split('\n')[0]}`);
  finish();
}
check(docs.length > 0, 'the rendering has objects');

function modelClass(apiVersion, kind) {
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return null;
  try {
    const mod = requireDep(`kubernetes-models/${apiVersion}`);
    return typeof mod[kind] === 'function' ? mod[kind] : null;
  } catch (err) {
    return null;
  }
}

const name = (o) => `${o && o.kind}/${o && o.metadata && o.metadata.name}`;
for (const doc of docs) {
  const Model = modelClass(doc.apiVersion, doc.kind);
  if (!Model) {
    fail(`schema: ${name(doc)}: no Kubernetes schema for apiVersion ${doc.apiVersion} kind ${doc.kind}`);
    continue;
  }
  try {
    new Model(doc).validate();
    ok(`schema: ${name(doc)} (${doc.apiVersion})`);
  } catch (err) {
    fail(`schema: ${name(doc)}: ${err.message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// 2. agentd rules.
const of = (kind) => docs.filter((d) => d.kind === kind);
const CONFIG_PATH = '/etc/agentd/agentd.yaml';
const SECRET_NAME = /(^|[_-])(api[_-]?key|secret|password|passwd|token|private[_-]?key|credentials?)$/i;
const SECRET_VALUE = [
  [/agd_k[0-9a-f]{16}_[0-9a-f]{64}/, 'an agentd API key'],
  [/\bsk-[A-Za-z0-9_-]{16,}/, 'an OpenAI-style API key'],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, 'a PEM private key'],
  [/^\s*Bearer\s+\S+/i, 'a bearer token'],
];

// Every secret-looking key name or value under `node` (a parsed agentd.yaml or a data map).
function findSecrets(node, where, out) {
  if (Array.isArray(node)) {
    node.forEach((v, i) => findSecrets(v, `${where}[${i}]`, out));
  } else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      const at = where ? `${where}.${k}` : k;
      if (SECRET_NAME.test(k) && v !== '' && v != null) out.push(`${at} is named like a secret`);
      // Backend headers that carry credentials must come from the environment ("env:NAME").
      if (/(^|\.)headers$/.test(where) && /auth|token|key|secret/i.test(k) &&
          !(typeof v === 'string' && v.startsWith('env:'))) {
        out.push(`${at} holds a credential header literally (use "env:NAME")`);
      }
      findSecrets(v, at, out);
    }
  } else if (typeof node === 'string') {
    for (const [re, what] of SECRET_VALUE) if (re.test(node)) out.push(`${where} contains ${what}`);
  }
}

// ConfigMaps: the one holding agentd.yaml, and no secrets in any of them.
let config = null;
let configMapName = '';
for (const cm of of('ConfigMap')) {
  const data = cm.data || {};
  const found = [];
  for (const [key, value] of Object.entries(data)) {
    if (key === 'agentd.yaml') {
      try {
        config = yaml.load(value) || {};
        configMapName = cm.metadata.name;
        findSecrets(config, '', found);
      } catch (err) {
        found.push(`agentd.yaml does not parse: ${err.message.split('\n')[0]}`);
      }
    } else {
      findSecrets({ [key]: value }, '', found);
    }
  }
  check(found.length === 0, `ConfigMap ${cm.metadata.name} holds no secrets`, found.join('; '));
}
check(config !== null, 'a ConfigMap holds agentd.yaml');
config = config || {};
if (args.writeConfig && configMapName) fs.writeFileSync(args.writeConfig, yaml.dump(config));

// Secrets: none committed, except the dev overlay's deliberately fake ones.
for (const s of of('Secret')) {
  if (!args.allowDevSecrets) {
    fail(`Secret ${s.metadata.name} is defined in the manifests: create Secrets in the cluster instead`);
    continue;
  }
  const values = Object.values(s.data || {}).map((v) => Buffer.from(String(v), 'base64').toString())
    .concat(Object.values(s.stringData || {}).map(String));
  check(values.length > 0 && values.every((v) => v.includes('not-a-secret')),
        `Secret ${s.metadata.name} is an obviously fake dev secret`,
        'every value must contain "not-a-secret"');
}

const sets = of('StatefulSet');
const deployments = of('Deployment');
if (deployments.length === 0) {
  if (!check(sets.length === 1, 'exactly one StatefulSet', `found ${sets.length}`)) finish();
} else if (!check(sets.length + deployments.length === 1,
                  'exactly one workload (a StatefulSet, or a Deployment for the PostgreSQL store)',
                  `found ${sets.length} StatefulSet(s) and ${deployments.length} Deployment(s)`)) {
  finish();
}
const sts = sets[0] || deployments[0];
const workload = sts.kind;
const spec = sts.spec || {};
const podSpec = (spec.template && spec.template.spec) || {};
const podLabels = (spec.template && spec.template.metadata && spec.template.metadata.labels) || {};
const containers = podSpec.containers || [];
const ctr = containers.find((c) => c.name === 'agentd');
if (!check(!!ctr, `the ${workload} has a container named agentd`)) finish();

const drainMs = config.drain_grace_ms === undefined ? 20000 : Number(config.drain_grace_ms);
const drainS = drainMs / 1000;
const tlsOn = !!(config.tls && config.tls.cert_file);
const listen = String(config.listen || '127.0.0.1:7700');
const grpcPort = Number(listen.slice(listen.lastIndexOf(':') + 1));
const healthListen = config.health_listen ? String(config.health_listen) : '';
const healthPort = healthListen ? Number(healthListen.slice(healthListen.lastIndexOf(':') + 1)) : 0;
const dataDir = config.data_dir || './data';
const mounts = ctr.volumeMounts || [];
const volumes = podSpec.volumes || [];
const volumeNamed = (n) => volumes.find((v) => v.name === n);

// Plaintext rule of agentd itself (CheckPlaintextAllowed): otherwise the pod crash-loops.
const host = listen.slice(0, listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
const loopback = /^(127\.|::1$|localhost$)/.test(host) || listen.startsWith('unix:');
check(loopback || tlsOn || config.allow_plaintext === true,
      `agentd.yaml: plaintext on ${listen} is allowed (tls.* or allow_plaintext)`,
      'agentd refuses to start: set tls.cert_file/key_file or allow_plaintext: true');

const storeType = (config.store && config.store.type) || 'rocksdb';
const dataMount = mounts.find((m) => m.mountPath === dataDir);
if (workload === 'StatefulSet') {
  // Data: one PVC per pod via volumeClaimTemplates, mounted at data_dir.
  const pvc = dataMount && (spec.volumeClaimTemplates || []).find((t) => t.metadata && t.metadata.name === dataMount.name);
  check(!!pvc, `data_dir ${dataDir} is a volumeClaimTemplate (one PVC per pod)`,
        'mount data_dir from spec.volumeClaimTemplates');
  if (pvc) {
    const pvcSpec = pvc.spec || {};
    check((pvcSpec.accessModes || []).includes('ReadWriteOnce') &&
          !!(pvcSpec.resources && pvcSpec.resources.requests && pvcSpec.resources.requests.storage),
          'the PVC template is ReadWriteOnce with a storage request');
  }
} else {
  // Stateless replicas: everything lives in PostgreSQL; data_dir only ever holds a bootstrap
  // key file. With the embedded RocksDB, each pod of a Deployment would have a private store
  // that is lost with the pod.
  check(storeType === 'postgres', `a Deployment runs store.type postgres (got ${storeType})`,
        'RocksDB data needs the StatefulSet (one PVC per pod)');
  const dataVolume = dataMount && volumeNamed(dataMount.name);
  check(!!(dataVolume && dataVolume.emptyDir), `data_dir ${dataDir} is an emptyDir (the pods are stateless)`);
  const claims = volumes.filter((v) => v.persistentVolumeClaim).map((v) => v.name);
  check(claims.length === 0, 'the Deployment mounts no PersistentVolumeClaim', claims.join(', '));
}
if (storeType === 'postgres') {
  const dsnEnv = (config.store && config.store.postgres_dsn_env) || 'AGENTD_POSTGRES_DSN';
  const e = (ctr.env || []).find((x) => x.name === dsnEnv);
  check(!!(e && e.valueFrom && e.valueFrom.secretKeyRef) ||
        (!e && (ctr.envFrom || []).some((x) => x.secretRef)),
        `store.postgres_dsn_env ${dsnEnv} comes from a Secret`, 'the DSN holds the database password');
}

// Config: mounted from the ConfigMap at the fixed path and passed to agentd.
const cfgMount = mounts.find((m) => m.mountPath === CONFIG_PATH);
const cfgVolume = cfgMount && volumeNamed(cfgMount.name);
check(!!(cfgVolume && cfgVolume.configMap && cfgVolume.configMap.name === configMapName),
      `${CONFIG_PATH} is mounted from the ConfigMap holding agentd.yaml`);
const argv = (ctr.command || []).concat(ctr.args || []);
const ci = argv.indexOf('--config');
check(ci >= 0 && argv[ci + 1] === CONFIG_PATH, `agentd is started with --config ${CONFIG_PATH}`);

// Ports and probes.
const grpcCtrPort = (ctr.ports || []).find((p) => p.name === 'grpc');
check(!!grpcCtrPort && grpcCtrPort.containerPort === grpcPort,
      `containerPort grpc matches listen (${grpcPort})`);
for (const kind of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
  const probe = ctr[kind];
  if (!probe) {
    if (kind !== 'startupProbe') fail(`${kind} is missing`);
    continue;
  }
  if (tlsOn) {
    // The kubelet's gRPC probe has no TLS: on a TLS port it could never succeed. agentd's
    // health_listen serves grpc.health.v1 alone, in plaintext, for exactly this.
    check(healthPort > 0 && !!probe.grpc && probe.grpc.port === healthPort && !probe.grpc.service,
          `${kind} is a native gRPC probe on health_listen (${healthPort}), not the TLS port`,
          healthPort > 0 ? `got ${JSON.stringify(probe)}`
                         : 'a grpc probe cannot speak TLS: set health_listen and probe that port');
  } else {
    check(!!probe.grpc && probe.grpc.port === grpcPort && !probe.grpc.service,
          `${kind} is a native gRPC probe on port ${grpcPort}`,
          `got ${JSON.stringify(probe)}`);
  }
}

// Drain: SIGKILL must not come before agentd has drained; liveness must not kill a draining pod.
// After drain_grace_ms agentd gives cancelled turns up to 5 s to record their end and open
// streams 1 s (SessionManager::Drain, AgentdServer::Shutdown): the grace period covers both.
const SHUTDOWN_TAIL_S = 6;
const tgps = podSpec.terminationGracePeriodSeconds;
check(typeof tgps === 'number' && tgps >= drainS + SHUTDOWN_TAIL_S,
      `terminationGracePeriodSeconds (${tgps}) >= drain_grace_ms/1000 + ${SHUTDOWN_TAIL_S} (${drainS + SHUTDOWN_TAIL_S})`);
const live = ctr.livenessProbe || {};
const liveWindow = (live.periodSeconds || 10) * (live.failureThreshold || 3);
check(liveWindow >= drainS + SHUTDOWN_TAIL_S,
      `liveness failure window (${liveWindow}s) >= shutdown time (${drainS + SHUTDOWN_TAIL_S}s)`);

// Security context: the container's settings, falling back to the pod's where Kubernetes does.
const psc = podSpec.securityContext || {};
for (const c of containers.concat(podSpec.initContainers || [])) {
  const sc = c.securityContext || {};
  const eff = (k) => (sc[k] !== undefined ? sc[k] : psc[k]);
  const caps = sc.capabilities || {};
  const seccomp = eff('seccompProfile') || {};
  const problems = [];
  if (eff('runAsNonRoot') !== true) problems.push('runAsNonRoot is not true');
  if (eff('runAsUser') === 0) problems.push('runAsUser is 0');
  if (sc.readOnlyRootFilesystem !== true) problems.push('readOnlyRootFilesystem is not true');
  if (sc.allowPrivilegeEscalation !== false) problems.push('allowPrivilegeEscalation is not false');
  if (sc.privileged === true) problems.push('privileged');
  if (!(caps.drop || []).includes('ALL')) problems.push('capabilities.drop lacks ALL');
  if ((caps.add || []).length) problems.push(`capabilities.add ${caps.add.join(',')}`);
  if (seccomp.type !== 'RuntimeDefault') problems.push('seccompProfile is not RuntimeDefault');
  check(problems.length === 0, `container ${c.name}: restrictive securityContext`, problems.join('; '));

  const r = c.resources || {};
  const missing = ['requests', 'limits'].flatMap((k) => ['cpu', 'memory']
    .filter((res) => !(r[k] && r[k][res] !== undefined)).map((res) => `${k}.${res}`));
  check(missing.length === 0, `container ${c.name}: resource requests and limits`, `missing ${missing.join(', ')}`);

  // Credentials only through Secrets.
  const literal = (c.env || []).filter((e) => e.value !== undefined && /KEY|SECRET|TOKEN|PASSWORD/i.test(e.name));
  check(literal.length === 0, `container ${c.name}: no credential in a literal env value`,
        literal.map((e) => e.name).join(', '));
}
const envByName = Object.fromEntries((ctr.env || []).map((e) => [e.name, e]));
const boot = envByName.AGENTD_BOOTSTRAP_KEY;
check(!!(boot && boot.valueFrom && boot.valueFrom.secretKeyRef),
      'AGENTD_BOOTSTRAP_KEY comes from a Secret (secretKeyRef)');
const envFromSecret = (ctr.envFrom || []).some((e) => e.secretRef);
for (const b of config.backends || []) {
  if (!b.api_key_env) continue;
  const e = envByName[b.api_key_env];
  check((e && e.valueFrom && e.valueFrom.secretKeyRef) || (!e && envFromSecret),
        `backend ${b.name}: ${b.api_key_env} comes from a Secret`);
}

// TLS material: every tls.* file lies under a read-only mount of a Secret volume.
if (tlsOn) {
  for (const key of ['cert_file', 'key_file', 'client_ca_file']) {
    const file = config.tls[key];
    if (!file) continue;
    const m = mounts.find((mt) => file.startsWith(mt.mountPath.replace(/\/?$/, '/')));
    const v = m && volumeNamed(m.name);
    check(!!(v && v.secret && m.readOnly), `tls.${key} ${file} is mounted read-only from a Secret`);
  }
}

// Services, PodDisruptionBudget, NetworkPolicy select the pods.
const selects = (sel) => !!sel && Object.keys(sel).length > 0 &&
  Object.entries(sel).every(([k, v]) => podLabels[k] === v);
const services = of('Service');
if (workload === 'StatefulSet') {
  const headless = services.find((s) => s.metadata.name === spec.serviceName);
  check(!!headless && headless.spec.clusterIP === 'None' && selects(headless.spec.selector),
        `headless Service ${spec.serviceName} (spec.serviceName) selects the pods`);
} else {
  // Pods of a Deployment have no identity to keep while not ready: a proxy resolving the
  // headless Service (Envoy STRICT_DNS) must get the ready ones only.
  const published = services.filter((s) => s.spec.clusterIP === 'None' && selects(s.spec.selector) &&
                                           s.spec.publishNotReadyAddresses === true);
  check(published.length === 0, 'no headless Service publishes not-ready pods of the Deployment',
        published.map((s) => s.metadata.name).join(', '));
}
const client = services.find((s) => s.spec.clusterIP !== 'None' && selects(s.spec.selector));
check(!!client && (client.spec.ports || []).some((p) => [grpcPort, 'grpc'].includes(p.targetPort)),
      'a client Service selects the pods and targets the gRPC port');
const pdb = of('PodDisruptionBudget').find((p) => selects((p.spec.selector || {}).matchLabels));
check(!!pdb && (pdb.spec.maxUnavailable !== undefined || pdb.spec.minAvailable !== undefined),
      'a PodDisruptionBudget covers the pods');
const np = of('NetworkPolicy').find((p) => selects((p.spec.podSelector || {}).matchLabels));
const grpcIngress = np && (np.spec.ingress || []).filter((r) =>
  (r.ports || []).some((p) => [grpcPort, 'grpc'].includes(p.port)));
check(!!np && (np.spec.policyTypes || []).includes('Ingress') && grpcIngress.length > 0 &&
      grpcIngress.every((r) => (r.from || []).length > 0),
      'a NetworkPolicy limits who reaches the gRPC port');
if (storeType === 'postgres' && np && (np.spec.policyTypes || []).includes('Egress')) {
  check((np.spec.egress || []).some((r) => (r.ports || []).some((p) => p.port === 5432)),
        'the NetworkPolicy lets agentd reach PostgreSQL (egress TCP 5432)');
}

// Autoscaling: never for shards (a session lives on one pod; scaling down takes it offline);
// required for the Deployment, which leaves its replica count to the autoscaler.
const hpas = of('HorizontalPodAutoscaler').filter((h) => {
  const ref = (h.spec && h.spec.scaleTargetRef) || {};
  return ref.kind === workload && ref.name === sts.metadata.name;
});
if (workload === 'StatefulSet') {
  check(hpas.length === 0, 'no HorizontalPodAutoscaler scales the StatefulSet (shards hold sessions)');
} else if (check(hpas.length === 1, 'a HorizontalPodAutoscaler scales the Deployment', `found ${hpas.length}`)) {
  const h = hpas[0].spec;
  const min = h.minReplicas === undefined ? 1 : h.minReplicas;
  check(min >= 2 && h.maxReplicas >= min,
        `the autoscaler keeps 2 or more replicas (${min}..${h.maxReplicas})`);
  check(spec.replicas === undefined, 'the Deployment sets no spec.replicas (the autoscaler owns it)',
        `replicas: ${spec.replicas} is reset by every apply`);
  const cpuTarget = (h.metrics || []).some((m) => m.type === 'Resource' && m.resource && m.resource.name === 'cpu');
  check(!cpuTarget || containers.every((c) => c.resources && c.resources.requests && c.resources.requests.cpu !== undefined),
        'every container requests CPU (the autoscaler measures utilization against it)');
  const budget = pdb && pdb.spec;
  check(!!budget && (budget.maxUnavailable !== undefined ||
                     (typeof budget.minAvailable === 'number' && budget.minAvailable < min)),
        `the PodDisruptionBudget lets one pod go at minReplicas (${min})`,
        'use maxUnavailable, or minAvailable below minReplicas, or node drains block');
}

finish();

function finish() {
  console.log(`validate-manifests [${args.label}]: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}
