// The LogTailPolicy controller: for every matching pod created after a policy,
// one LogTail (src/core/policy.ts decides which, with what name and spec).
// Keys, not events: every informer event only enqueues the key of the policy
// it concerns (a pod event: every policy of the pod's namespace; a LogTail
// event: the policy in its label), and reconcile re-reads everything from the
// caches. The LogTails it creates are ordinary ones, captured by the LogTail
// controller like any other.
import type { KubernetesListObject, KubernetesObject, V1Pod } from '@kubernetes/client-node';
import type { KubeCredentials } from '../adapters/kube-credentials.ts';
import type { KubeApi } from '../adapters/kube-api.ts';
import { logTailsPath, type LogTail } from '../core/spec.ts';
import { POLICY_LABEL, decideCreate, logTailFor, policiesPath, policyStatus, statusEqual, type LogTailPolicy } from '../core/policy.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import { informerFor, resourcePath, type ObjectInformer } from './supervised-informer.ts';
import { WorkQueue } from './work-queue.ts';

export interface PolicyControllerOptions {
  kc: KubeCredentials;
  api: KubeApi;
  logger: Logger;
  metrics?: Metrics;
  /** Empty or undefined: all namespaces. */
  watchNamespaces?: string[];
  workers?: number;
  now?: () => number;
}

type Informers = { policies: ObjectInformer<LogTailPolicy>; pods: ObjectInformer<V1Pod>; logTails: ObjectInformer<LogTail> };

export class PolicyController {
  private readonly o: PolicyControllerOptions;
  private readonly log: Logger;
  private readonly queue: WorkQueue;
  private inf: Informers | undefined;
  /** Per policy UID: the pod UIDs this process created a LogTail for (so one deleted since is not made again). */
  private readonly created = new Map<string, Set<string>>();
  private running = false;

  constructor(o: PolicyControllerOptions) {
    this.o = o;
    this.log = o.logger;
    this.queue = new WorkQueue({ name: 'logtailpolicies', logger: o.logger, baseDelayMs: 250, maxDelayMs: 60_000 });
  }

  ready(): boolean {
    return this.running && !!this.inf && Object.values(this.inf).every((i) => i.hasSynced());
  }

  async start(): Promise<void> {
    const inf = this.makeInformers();
    const byPolicy = (p: LogTailPolicy) => this.queue.add(`${p.metadata?.namespace}/${p.metadata?.name}`);
    const byPod = (pod: V1Pod) => {
      for (const p of inf.policies.list(pod.metadata?.namespace)) byPolicy(p);
    };
    const byLogTail = (lt: LogTail) => {
      const name = lt.metadata?.labels?.[POLICY_LABEL];
      if (name) this.queue.add(`${lt.metadata?.namespace}/${name}`);
    };
    for (const verb of ['add', 'update', 'delete'] as const) {
      inf.policies.on(verb, byPolicy);
      inf.pods.on(verb, byPod);
      inf.logTails.on(verb, byLogTail);
    }
    this.inf = inf;
    // Pods and LogTails first: a policy's first reconcile must see them.
    await Promise.all([inf.pods.start(), inf.logTails.start()]);
    await inf.policies.start();
    this.running = true;
    this.queue.run((key) => this.reconcile(key), this.o.workers ?? 2);
    for (const p of inf.policies.list()) byPolicy(p);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.queue.shutdown();
    for (const i of Object.values(this.inf ?? {})) i.stop();
  }

  private makeInformers(): Informers {
    const { kc, watchNamespaces: namespaces } = this.o;
    // Lists go through the same client as every other request (KubeApi).
    const list = <T extends KubernetesObject>(path: string, labelSelector?: string) =>
      this.o.api.request<KubernetesListObject<T>>('GET', labelSelector ? `${path}?labelSelector=${encodeURIComponent(labelSelector)}` : path);
    const common = { kc, namespaces, logger: this.log };
    const restarted = (informer: string) => () => this.o.metrics?.informerRestarts.inc({ informer });
    return {
      policies: informerFor<LogTailPolicy>({
        ...common,
        name: 'logtailpolicies',
        path: (ns) => policiesPath(ns),
        listFn: (ns) => list<LogTailPolicy>(policiesPath(ns)),
        onRestart: restarted('logtailpolicies'),
      }),
      pods: informerFor<V1Pod>({
        ...common,
        name: 'policy-pods',
        path: (ns) => resourcePath({ version: 'v1', plural: 'pods', namespace: ns }),
        listFn: (ns) => list<V1Pod>(resourcePath({ version: 'v1', plural: 'pods', namespace: ns })),
        onRestart: restarted('policy-pods'),
      }),
      logTails: informerFor<LogTail>({
        ...common,
        name: 'policy-logtails',
        labelSelector: POLICY_LABEL,
        path: (ns) => logTailsPath(ns),
        listFn: (ns) => list<LogTail>(logTailsPath(ns), POLICY_LABEL),
        onRestart: restarted('policy-logtails'),
      }),
    };
  }

  /** Creates the missing LogTails of one policy, then writes its status if it changed. */
  async reconcile(key: string): Promise<void> {
    const inf = this.inf;
    if (!inf) return;
    const slash = key.indexOf('/');
    const ns = key.slice(0, slash);
    const policy = inf.policies.get(key.slice(slash + 1), ns);
    if (!policy) {
      this.forgetDeletedPolicies(inf);
      return;
    }
    const pods = inf.pods.list(ns);
    const done = this.created.get(policy.metadata.uid!) ?? new Set<string>();
    this.created.set(policy.metadata.uid!, done);
    const now = (this.o.now ?? Date.now)();
    for (const pod of pods) {
      const uid = pod.metadata?.uid ?? '';
      const name = logTailNameIfMissing(policy, pod, inf, done.has(uid), now);
      if (!name || !this.running) continue;
      const made = await this.o.api.createLogTail(ns, logTailFor(policy, pod, name));
      done.add(uid);
      if (made) this.log.info('policy created a LogTail', { policy: key, pod: pod.metadata?.name, logtail: name });
      else this.log.debug('LogTail existed already', { policy: key, logtail: name });
    }
    // Forget pods that are gone: their UIDs never come back.
    const live = new Set(pods.map((p) => p.metadata?.uid));
    for (const uid of done) if (!live.has(uid)) done.delete(uid);
    await this.writeStatus(policy, pods, inf.logTails.list(ns));
  }

  private async writeStatus(policy: LogTailPolicy, pods: V1Pod[], logTails: LogTail[]): Promise<void> {
    const status = policyStatus(policy, pods, logTails);
    if (statusEqual(policy.status, status)) return;
    await this.o.api.patchPolicyStatus(policy.metadata.namespace!, policy.metadata.name!, status);
  }

  private forgetDeletedPolicies(inf: Informers): void {
    const uids = new Set(inf.policies.list().map((p) => p.metadata.uid));
    for (const uid of this.created.keys()) if (!uids.has(uid)) this.created.delete(uid);
  }
}

/** The name of the LogTail to create for `pod`, or undefined when none is due. */
function logTailNameIfMissing(policy: LogTailPolicy, pod: V1Pod, inf: Informers, createdBefore: boolean, now: number): string | undefined {
  const probe = decideCreate(policy, pod, false, createdBefore, now);
  if (!probe.create) return undefined;
  return inf.logTails.get(probe.name, policy.metadata.namespace) ? undefined : probe.name;
}
