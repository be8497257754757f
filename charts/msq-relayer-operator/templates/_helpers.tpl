{{/* Names, labels and the RBAC rules shared by the templates. */}}

{{- define "msq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "msq.fullname" -}}
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

{{- define "msq.selectorLabels" -}}
app.kubernetes.io/name: {{ include "msq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "msq.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "msq.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: msq-relayer
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "msq.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "msq.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "msq.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Namespaces that get the relayer NetworkPolicies. */}}
{{- define "msq.networkPolicyNamespaces" -}}
{{- $ns := .Values.networkPolicy.namespaces | default .Values.watchNamespaces | default (list .Release.Namespace) }}
{{- toJson (uniq $ns) }}
{{- end }}

{{/*
What the operator does in the namespaces it watches, derived from operator/msq_operator (kube_io.py,
handlers/) and Kopf 1.45. No wildcards, no create/update/delete beyond what is listed:
- its own resources: Kopf lists and watches them and patches finalizers, progress annotations and status;
  pools create and delete Relayers and the autoscaler writes /scale.
- the finalizers subresources (update): rendered objects carry ownerReferences with blockOwnerDeletion,
  which clusters running the OwnerReferencesPermissionEnforcement admission plugin only accept from
  whoever may update the owner's finalizers.
- Secrets, ConfigMaps, Services, Deployments: read one by name, then server-side apply when it differs.
  Apply is a PATCH, but the API server also checks create when the object does not exist yet. Nothing is
  ever listed, watched or deleted: garbage collection removes children through their ownerReferences.
- core Events: Kopf posts them (create) for handler progress and the operator's own kopf.info/warn.
*/}}
{{- define "msq.namespacedRules" -}}
- apiGroups: [relayer.msq.io]
  resources: [relayerpools, contractpolicies]
  verbs: [get, list, watch, patch]
- apiGroups: [relayer.msq.io]
  resources: [relayers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [relayer.msq.io]
  resources: [relayerpools/status, relayers/status, contractpolicies/status, relayerpools/scale]
  verbs: [patch]
- apiGroups: [relayer.msq.io]
  resources: [relayerpools/finalizers, relayers/finalizers]
  verbs: [update]
# list and watch feed the operator's watch cache (msq_operator/watch_cache.py): its timers read Secrets and
# its own objects from watches instead of asking the API server on every pass.
- apiGroups: [""]
  resources: [secrets, configmaps, services]
  verbs: [get, list, watch, create, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}
