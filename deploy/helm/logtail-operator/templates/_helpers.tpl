{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "logtail.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "logtail.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "logtail.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "logtail.selectorLabels" -}}
app.kubernetes.io/name: {{ include "logtail.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "logtail.labels" -}}
helm.sh/chart: {{ include "logtail.chart" . }}
{{ include "logtail.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: logtail
{{- end }}

{{- define "logtail.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "logtail.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "logtail.leaseName" -}}
{{- default (include "logtail.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* Name of the ValidatingAdmissionPolicy and of its binding. */}}
{{- define "logtail.admissionPolicyName" -}}
{{- printf "%s-pod-log-access" (include "logtail.fullname" .) }}
{{- end }}

{{/*
repository:tag, or repository:tag@sha256:... when image.digest is set: the
runtime pulls by the digest (the tag is then only for people reading it).
*/}}
{{- define "logtail.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $ref .Values.image.digest }}
{{- else }}
{{- $ref }}
{{- end }}
{{- end }}

{{/* "s3" or "file"; fails on a missing or unsupported store URL. */}}
{{- define "logtail.storeScheme" -}}
{{- $url := required "store.url is required: s3://BUCKET/PREFIX, or file:///DIR together with store.filesystem.existingClaim" .Values.store.url }}
{{- if hasPrefix "s3://" $url }}
{{- if not (regexMatch "^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$" $url) }}
{{- fail (printf "store.url %q: expected s3://BUCKET or s3://BUCKET/PREFIX with a valid bucket name" $url) }}
{{- end }}
{{- print "s3" }}
{{- else if hasPrefix "file://" $url }}
{{- print "file" }}
{{- else }}
{{- fail (printf "store.url %q: only s3:// and file:// stores are supported" $url) }}
{{- end }}
{{- end }}

{{/*
The directory of a file:// store, where its PersistentVolumeClaim is mounted.
The root filesystem is read-only and dies with the pod, so a file:// store
without a claim would lose every capture: refuse it at render time.
*/}}
{{- define "logtail.storeDir" -}}
{{- $url := .Values.store.url }}
{{- if not .Values.store.filesystem.existingClaim }}
{{- fail (printf "store.url %q is a file:// store, which needs store.filesystem.existingClaim: the container's root filesystem is read-only and is lost with the pod. Use an s3:// store, or name a PersistentVolumeClaim to mount at the store directory." $url) }}
{{- end }}
{{- $dir := trimSuffix "/" (trimPrefix "file://" $url) }}
{{- if not (regexMatch "^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$" $dir) }}
{{- fail (printf "store.url %q: a file:// store needs an absolute directory such as file:///var/lib/logtail" $url) }}
{{- end }}
{{- if or (eq $dir "/tmp") (hasPrefix "/tmp/" $dir) (hasPrefix "/var/run/secrets" $dir) (has $dir (list "/" "/app" "/dev" "/proc" "/sys" "/etc")) }}
{{- fail (printf "store.url %q: %s is not a usable mount point for the store's PersistentVolumeClaim; use e.g. file:///var/lib/logtail" $url $dir) }}
{{- end }}
{{- $dir }}
{{- end }}

{{/* Checks across values that the schema cannot express. */}}
{{- define "logtail.validate" -}}
{{- $scheme := include "logtail.storeScheme" . }}
{{- if eq $scheme "file" }}
{{- $_ := include "logtail.storeDir" . }}
{{- end }}
{{- if and .Values.store.sseKmsKeyId (ne .Values.store.sse "aws:kms") }}
{{- fail "store.sseKmsKeyId needs store.sse: aws:kms" }}
{{- end }}
{{- if and .Values.admissionPolicy.required (not .Values.admissionPolicy.enabled) }}
{{- fail "admissionPolicy.required needs admissionPolicy.enabled: the operator would wait forever for a policy the chart does not install (set both to false only if you accept that anyone who may create a LogTail can capture any pod in their namespace)" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) (not .Values.sharding.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled or sharding.enabled: without either every replica would capture the same logs" }}
{{- end }}
{{- if and .Values.terminationGracePeriodSeconds (le (int .Values.terminationGracePeriodSeconds) (add (int .Values.shutdownTimeoutSeconds) 5)) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed shutdownTimeoutSeconds + 5 (%d): the operator needs that long to checkpoint its captures on SIGTERM" (int .Values.terminationGracePeriodSeconds) (add (int .Values.shutdownTimeoutSeconds) 5)) }}
{{- end }}
{{- end }}

{{/* The rules the operator needs in every namespace it watches (see docs/security.md). */}}
{{- define "logtail.operatorRules" -}}
- apiGroups: ["logtail.dev"]
  resources: ["logtails"]
  verbs: ["list", "watch", "patch", "delete", "create"]
- apiGroups: ["logtail.dev"]
  resources: ["logtails/status"]
  verbs: ["patch"]
- apiGroups: ["logtail.dev"]
  resources: ["logtailpolicies"]
  verbs: ["list", "watch"]
- apiGroups: ["logtail.dev"]
  resources: ["logtailpolicies/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- if .Values.holdPod.enabled }}
{{- /* spec.holdPod: add and remove the logtail.dev/hold-<uid> finalizer (a JSON patch). */}}
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["patch"]
{{- end }}
{{- end }}
