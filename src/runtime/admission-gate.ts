// --require-admission-policy: the operator captures only while the
// ValidatingAdmissionPolicy that checks `get pods/log` for a LogTail's author
// (and its binding) exist. Without them anyone who may create a LogTail could
// have the operator copy the logs of any pod in their namespace.
//
// Checked before the controller starts (and again on each new leadership
// term). While either object is missing the operator captures nothing, says
// why on every unfinished LogTail (status reason and a Streaming=False
// condition, both AdmissionPolicyMissing) and in its log, and looks again
// every recheck interval: no crash loop, and it starts by itself once the
// policy is installed.
import type { KubeApi } from '../adapters/kube-api.ts';
import { isNotFound } from '../adapters/kube-api.ts';
import { logTailsPath, type LogTail } from '../core/spec.ts';
import { isTerminalPhase, setCondition, type Condition, type Phase } from '../core/status.ts';
import type { Logger } from './logger.ts';

export const ADMISSION_POLICY_MISSING = 'AdmissionPolicyMissing';

const VAP = '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies';
const VAPB = '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings';

export interface AdmissionPolicyNames {
  policy: string;
  binding: string;
}

interface PolicyObject {
  spec?: { failurePolicy?: string };
}
interface BindingObject {
  spec?: { policyName?: string; validationActions?: string[] };
}

/** What is wrong with the admission policy setup; empty when it is in place. */
export async function admissionPolicyProblems(api: KubeApi, names: AdmissionPolicyNames): Promise<string[]> {
  const problems: string[] = [];
  const read = async <T>(path: string, what: string): Promise<T | undefined> => {
    try {
      return await api.request<T>('GET', path);
    } catch (err) {
      if (isNotFound(err)) problems.push(`${what} does not exist`);
      else problems.push(`${what} could not be read: ${(err as Error).message}`);
      return undefined;
    }
  };
  const policy = await read<PolicyObject>(`${VAP}/${encodeURIComponent(names.policy)}`, `ValidatingAdmissionPolicy "${names.policy}"`);
  const binding = await read<BindingObject>(`${VAPB}/${encodeURIComponent(names.binding)}`, `ValidatingAdmissionPolicyBinding "${names.binding}"`);
  if (policy && policy.spec?.failurePolicy === 'Ignore') problems.push(`ValidatingAdmissionPolicy "${names.policy}" has failurePolicy Ignore, so a failed check admits the LogTail`);
  if (binding) {
    if (binding.spec?.policyName !== names.policy) problems.push(`ValidatingAdmissionPolicyBinding "${names.binding}" binds policy "${binding.spec?.policyName ?? ''}", not "${names.policy}"`);
    if (!(binding.spec?.validationActions ?? []).includes('Deny')) problems.push(`ValidatingAdmissionPolicyBinding "${names.binding}" does not have validationActions Deny`);
  }
  return problems;
}

export interface AdmissionGateOptions {
  api: KubeApi;
  logger: Logger;
  names: AdmissionPolicyNames;
  /** Empty: all namespaces. */
  watchNamespaces: string[];
  recheckMs: number;
  now?: () => Date;
}

export class AdmissionGate {
  private readonly o: AdmissionGateOptions;
  private problems: string[] | undefined;

  constructor(o: AdmissionGateOptions) {
    this.o = o;
  }

  /** Why captures are held back, or undefined when they are not (or not yet checked). */
  blockedBecause(): string | undefined {
    return this.problems?.length ? this.message(this.problems) : undefined;
  }

  private message(problems: string[]): string {
    return `--require-admission-policy is set and ${problems.join('; ')}: capturing nothing until it is installed (without it anyone who may create a LogTail could capture any pod in their namespace)`;
  }

  /**
   * Resolves true once the policy and binding are in place, false if `signal`
   * aborts first. Meanwhile marks every unfinished LogTail.
   */
  async waitUntilPresent(signal: AbortSignal): Promise<boolean> {
    let logged = '';
    while (!signal.aborted) {
      let problems: string[];
      try {
        problems = await admissionPolicyProblems(this.o.api, this.o.names);
      } catch (err) {
        problems = [`the admission policy could not be checked: ${(err as Error).message}`];
      }
      this.problems = problems;
      if (problems.length === 0) {
        this.o.logger.info('admission policy in place', { policy: this.o.names.policy, binding: this.o.names.binding });
        return true;
      }
      const msg = this.message(problems);
      if (msg !== logged) {
        this.o.logger.error('admission policy missing; not capturing', { problems, policy: this.o.names.policy, binding: this.o.names.binding });
        logged = msg;
      }
      try {
        await this.markLogTails(msg);
      } catch (err) {
        this.o.logger.warn('could not mark LogTails as held back', { error: (err as Error).message });
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, this.o.recheckMs);
        function done(): void {
          clearTimeout(t);
          signal.removeEventListener('abort', done);
          resolve();
        }
        signal.addEventListener('abort', done, { once: true });
      });
    }
    return false;
  }

  private async markLogTails(message: string): Promise<void> {
    const paths = this.o.watchNamespaces.length ? this.o.watchNamespaces.map((ns) => logTailsPath(ns)) : [logTailsPath()];
    const now = (this.o.now ?? (() => new Date()))();
    for (const path of paths) {
      const list = await this.o.api.request<{ items: LogTail[] }>('GET', path);
      for (const lt of list.items) {
        const status = (lt.status ?? {}) as { phase?: Phase; reason?: string; message?: string; conditions?: Condition[] };
        if (isTerminalPhase(status.phase)) continue;
        if (status.reason === ADMISSION_POLICY_MISSING && status.message === message) continue;
        const conditions = setCondition(status.conditions, { type: 'Streaming', status: 'False', reason: ADMISSION_POLICY_MISSING, message }, now);
        await this.o.api.patchLogTailStatus(lt.metadata.namespace!, lt.metadata.name!, { phase: 'Pending', reason: ADMISSION_POLICY_MISSING, message, conditions });
        this.o.logger.warn('LogTail held back: admission policy missing', { namespace: lt.metadata.namespace, name: lt.metadata.name });
      }
    }
  }
}
