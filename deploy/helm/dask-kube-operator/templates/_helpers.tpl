{{/* Names, labels, the operator's arguments and its RBAC rules, shared by the templates. */}}

{{- define "dask-kube-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dask-kube-operator.fullname" -}}
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

{{- define "dask-kube-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dask-kube-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dask-kube-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "dask-kube-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: dask-kube
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "dask-kube-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dask-kube-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The namespaces to watch, as a list. Single-namespace mode (rbac.cluster=false) grants a Role in the release
namespace only, so it watches exactly that namespace; anything else is refused at render time.
*/}}
{{- define "dask-kube-operator.watchNamespaces" -}}
{{- $namespaces := .Values.watchNamespaces | default list }}
{{- if not .Values.rbac.cluster }}
{{- if and $namespaces (ne (toJson $namespaces) (toJson (list .Release.Namespace))) }}
{{- fail (printf "rbac.cluster=false grants a Role in the release namespace only: watchNamespaces must be [] or [%s], not %s" .Release.Namespace (toJson $namespaces)) }}
{{- end }}
{{- $namespaces = list .Release.Namespace }}
{{- end }}
{{- toJson $namespaces }}
{{- end }}

{{- define "dask-kube-operator.args" -}}
{{- $namespaces := include "dask-kube-operator.watchNamespaces" . | fromJsonArray }}
{{- if $namespaces }}
{{- range $namespaces }}
- --namespace={{ . }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
- --liveness=http://0.0.0.0:{{ .Values.healthPort }}/healthz
{{- if .Values.metrics.enabled }}
- --metrics-port={{ .Values.metrics.port }}
{{- end }}
{{- if .Values.leaderElection.enabled }}
- --leader-elect
- --lease-name={{ include "dask-kube-operator.fullname" . }}
- --lease-namespace={{ .Release.Namespace }}
{{- end }}
{{- if eq .Values.logLevel "debug" }}
- --debug
{{- else if eq .Values.logLevel "info" }}
- --verbose
{{- else if ne .Values.logLevel "warning" }}
{{- fail (printf "logLevel must be warning, info or debug, not %q" .Values.logLevel) }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
RBAC rules for namespaced resources: identical in the ClusterRole and the Role. docs/rbac.md says why each is there;
tests/unit/test_deploy.py pins them.
*/}}
{{- define "dask-kube-operator.namespacedRules" -}}
# The four custom resources: watch them, add finalizers and annotations, create a DaskCluster's default
# DaskWorkerGroup and a DaskJob's DaskCluster, and delete what a DaskJob or an idle timeout retires.
- apiGroups: ["kubernetes.dask.org"]
  resources: ["daskclusters", "daskworkergroups", "daskjobs", "daskautoscalers"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# Phases, conditions, replica counts.
- apiGroups: ["kubernetes.dask.org"]
  resources: ["daskclusters/status", "daskworkergroups/status", "daskjobs/status", "daskautoscalers/status"]
  verbs: ["get", "update", "patch"]
# Scheduler, worker and job-runner pods.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The last log lines of a crashing scheduler or job runner, quoted in the resource's status and Events.
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# Scheduler services.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# A scheduler's NetworkPolicy (spec.networkPolicy): created while wanted, deleted when not (and with its cluster
# by garbage collection). Read by name only.
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create", "delete"]
# TLS clusters: generate a cluster's certificate Secret (garbage-collected with it), read it or the user's to
# reach the scheduler over TLS. No list or watch: the operator reads Secrets of TLS clusters by name only.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create"]
# The scheduler's optional PodDisruptionBudget (spec.scheduler.disruptionBudget): created, checked by name,
# deleted when the spec no longer asks for it (otherwise garbage-collected with its cluster).
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "create", "delete"]
# Events on the custom resources: a repeat reads the Event and counts it up (get, patch).
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["get", "create", "patch"]
# get: a cluster's client Lease ({cluster}-client); get, create, update: leader election (one Lease in the
# release namespace that the replicas take turns holding).
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
{{- end }}

{{/* Cluster-scoped resources: only a ClusterRole can grant them (never listed in the Role). */}}
{{- define "dask-kube-operator.clusterRules" -}}
# kopf's namespace observer (when watchNamespaces is a list).
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
# kopf's resource observer: notices CRDs being installed, upgraded or removed.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end }}
