{{- /*
Names. Every define is prefixed with the chart name. Namespaced resources set
metadata.namespace to the release namespace explicitly, as the other webhook charts do:
the webhook configurations (cluster-scoped) must name the Service's namespace anyway, and
`helm template | kubectl apply` then lands everything in one place.
*/}}

{{- define "argo-plugin-guard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "argo-plugin-guard.fullname" -}}
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

{{- define "argo-plugin-guard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "argo-plugin-guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "argo-plugin-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "argo-plugin-guard.labels" -}}
helm.sh/chart: {{ include "argo-plugin-guard.chart" . }}
{{ include "argo-plugin-guard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: argo-plugin-guard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "argo-plugin-guard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "argo-plugin-guard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "argo-plugin-guard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- /* The Service's DNS name: what the serving certificate must be valid for. */}}
{{- define "argo-plugin-guard.serviceHost" -}}
{{- printf "%s.%s.svc" (include "argo-plugin-guard.fullname" .) .Release.Namespace }}
{{- end }}

{{- /*
TLS mode: "certManager", "existingSecret", or "selfManaged" (the default: neither set).
validate.yaml refuses both set at once.
*/}}
{{- define "argo-plugin-guard.tlsMode" -}}
{{- if .Values.certManager.enabled }}certManager
{{- else if .Values.tls.existingSecret }}existingSecret
{{- else }}selfManaged
{{- end }}
{{- end }}

{{- /* TLS: the serving Secret (mounted at /tls, or kept by the server itself). */}}
{{- define "argo-plugin-guard.tlsSecretName" -}}
{{- $mode := include "argo-plugin-guard.tlsMode" . }}
{{- if eq $mode "existingSecret" }}
{{- .Values.tls.existingSecret }}
{{- else if eq $mode "selfManaged" }}
{{- .Values.tls.selfManaged.secretName | default (printf "%s-tls" (include "argo-plugin-guard.fullname" .)) }}
{{- else }}
{{- printf "%s-tls" (include "argo-plugin-guard.fullname" .) }}
{{- end }}
{{- end }}

{{- define "argo-plugin-guard.certificateName" -}}
{{- printf "%s-tls" (include "argo-plugin-guard.fullname" .) }}
{{- end }}

{{- define "argo-plugin-guard.policiesConfigMapName" -}}
{{- if .Values.policies.existingConfigMap }}
{{- .Values.policies.existingConfigMap }}
{{- else if .Values.policies.custom }}
{{- printf "%s-policies" (include "argo-plugin-guard.fullname" .) }}
{{- end }}
{{- end }}

{{- /* The server's --timeout: the largest timeoutSeconds of the rendered webhooks. */}}
{{- define "argo-plugin-guard.serverTimeout" -}}
{{- $t := int .Values.webhook.timeoutSeconds }}
{{- if and .Values.webhook.workloads.enabled (gt (int .Values.webhook.workloads.timeoutSeconds) $t) }}
{{- $t = int .Values.webhook.workloads.timeoutSeconds }}
{{- end }}
{{- if and .Values.mutating.enabled (gt (int .Values.mutating.timeoutSeconds) $t) }}
{{- $t = int .Values.mutating.timeoutSeconds }}
{{- end }}
{{- if and .Values.mutating.enabled .Values.mutating.validation.enabled (gt (int .Values.mutating.validation.timeoutSeconds) $t) }}
{{- $t = int .Values.mutating.validation.timeoutSeconds }}
{{- end }}
{{- $t }}
{{- end }}

{{- /*
The namespaceSelector of every webhook: never kube-system, kube-node-lease or the release
namespace (the webhook must never review its own pods or the ConfigMaps it reads), plus
webhook.excludeNamespaces; `labels` (a map) adds matchLabels.
Call with (dict "root" $ "labels" $labels).
*/}}
{{- define "argo-plugin-guard.namespaceSelector" -}}
{{- $root := .root }}
{{- $excluded := list "kube-system" "kube-node-lease" $root.Release.Namespace }}
{{- range $root.Values.webhook.excludeNamespaces }}
{{- $excluded = append $excluded . }}
{{- end }}
{{- with .labels }}
matchLabels:
  {{- toYaml . | nindent 2 }}
{{- end }}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      {{- toYaml ($excluded | uniq) | nindent 6 }}
{{- end }}

{{- /* clientConfig of a webhook; path is "/validate" or "/mutate". */}}
{{- define "argo-plugin-guard.clientConfig" -}}
{{- $root := .root }}
service:
  name: {{ include "argo-plugin-guard.fullname" $root }}
  namespace: {{ $root.Release.Namespace }}
  path: {{ .path }}
  port: {{ $root.Values.service.port }}
{{- /* Only tls.existingSecret renders a caBundle: cert-manager's cainjector or the
server itself (self-managed) write it, and a rendered one would be a GitOps diff. */}}
{{- if eq (include "argo-plugin-guard.tlsMode" $root) "existingSecret" }}
caBundle: {{ $root.Values.tls.caBundle | quote }}
{{- end }}
{{- end }}

{{- /* Annotations of the webhook configurations (cert-manager's CA injection). */}}
{{- define "argo-plugin-guard.webhookAnnotations" -}}
{{- if .Values.certManager.enabled }}
cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "argo-plugin-guard.certificateName" .) }}
{{- end }}
{{- with .Values.webhook.annotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- /* Regex matching the names of this release's webhooks (for alerts). */}}
{{- define "argo-plugin-guard.webhookNameRegex" -}}
{{- printf ".*\\.%s\\.%s\\.svc" (include "argo-plugin-guard.fullname" .) .Release.Namespace }}
{{- end }}

{{- /*
policies.custom as a map of file name -> policy text: from a map of `<id>.yaml` to a YAML
string or a mapping, or from a list of mappings (file named after `id`). Fails when a
file's name and its policy id differ (the server refuses such a file) or a text is not
YAML. Output: YAML of the map (empty when policies.custom is empty).
*/}}
{{- define "argo-plugin-guard.policyFiles" -}}
{{- $files := dict }}
{{- $custom := .Values.policies.custom }}
{{- if kindIs "slice" $custom }}
{{- range $i, $policy := $custom }}
{{- if not (and (kindIs "map" $policy) $policy.id) }}
{{- fail (printf "argo-plugin-guard: policies.custom[%d] must be a policy mapping with an id." $i) }}
{{- end }}
{{- $file := printf "%s.yaml" $policy.id }}
{{- if hasKey $files $file }}
{{- fail (printf "argo-plugin-guard: policies.custom has two policies with id %q." $policy.id) }}
{{- end }}
{{- $_ := set $files $file (toYaml $policy) }}
{{- end }}
{{- else if $custom }}
{{- range $file, $policy := $custom }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?\\.ya?ml$" $file) }}
{{- fail (printf "argo-plugin-guard: policies.custom key %q must be <policy-id>.yaml." $file) }}
{{- end }}
{{- $document := $policy }}
{{- $text := "" }}
{{- if kindIs "string" $policy }}
{{- $document = fromYaml $policy }}
{{- if hasKey $document "Error" }}
{{- fail (printf "argo-plugin-guard: policies.custom %q is not a YAML mapping: %s" $file $document.Error) }}
{{- end }}
{{- $text = $policy }}
{{- else }}
{{- $text = toYaml $policy }}
{{- end }}
{{- $id := regexReplaceAll "\\.ya?ml$" $file "" }}
{{- if ne (toString $document.id) $id }}
{{- fail (printf "argo-plugin-guard: policies.custom %q holds policy id %q; the file must be named after its id (%s.yaml)." $file (toString $document.id) (toString $document.id)) }}
{{- end }}
{{- $_ := set $files $file $text }}
{{- end }}
{{- end }}
{{- if $files }}
{{- toYaml $files }}
{{- end }}
{{- end }}
