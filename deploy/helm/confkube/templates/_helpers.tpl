{{/* Names, labels and shared pieces of the confkube chart. */}}

{{- define "confkube.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "confkube.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "confkube.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "confkube.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Component object names (short enough for every suffix the chart adds). */}}
{{- define "confkube.nodeAgent.name" -}}{{ include "confkube.fullname" . }}-node-agent{{- end -}}
{{- define "confkube.webhook.name" -}}{{ include "confkube.fullname" . }}-webhook{{- end -}}
{{- define "confkube.webhook.tlsSecret" -}}{{ include "confkube.fullname" . }}-webhook-tls{{- end -}}
{{- define "confkube.attest.name" -}}{{ include "confkube.fullname" . }}-attest{{- end -}}
{{- define "confkube.attest.tlsSecret" -}}
{{- default (printf "%s-attest-tls" (include "confkube.fullname" .)) .Values.attestation.tls.existingSecret -}}
{{- end -}}
{{- define "confkube.certgen.name" -}}{{ include "confkube.fullname" . }}-certgen{{- end -}}

{{- define "confkube.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "confkube.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: confkube
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "webhook"). */}}
{{- define "confkube.selectorLabels" -}}
app.kubernetes.io/name: {{ include "confkube.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "confkube.componentLabels" -}}
{{ include "confkube.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "confkube.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* Global flags of the binary, first on every command line. */}}
{{- define "confkube.globalArgs" -}}
- --log-format={{ .Values.logging.format }}
- --log-level={{ .Values.logging.level }}
{{- end -}}

{{/* Container security context: non-root, read-only root, no capabilities. */}}
{{- define "confkube.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* true when cert-manager provides the serving certificates. */}}
{{- define "confkube.certManager" -}}
{{- $v := toString .Values.webhook.certManager.enabled -}}
{{- if eq $v "true" -}}true
{{- else if eq $v "false" -}}false
{{- else if .Capabilities.APIVersions.Has "cert-manager.io/v1" -}}true
{{- else -}}false
{{- end -}}
{{- end -}}

{{/* true when Prometheus Operator objects are rendered. */}}
{{- define "confkube.monitoring" -}}
{{- $v := toString .Values.monitoring.enabled -}}
{{- if eq $v "true" -}}true
{{- else if eq $v "false" -}}false
{{- else if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" -}}true
{{- else -}}false
{{- end -}}
{{- end -}}

{{/* true when the attestation policy is file-managed (ConfigMap, hot-reloaded). */}}
{{- define "confkube.attest.policyFile" -}}
{{- if or .Values.attestation.policy.existingConfigMap (gt (int .Values.attestation.replicas) 1) .Values.attestation.signingKeys.existingSecret -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{- define "confkube.attest.policyConfigMap" -}}
{{- default (printf "%s-attest-policy" (include "confkube.fullname" .)) .Values.attestation.policy.existingConfigMap -}}
{{- end -}}

{{- define "confkube.attest.adminSecret" -}}
{{- default (printf "%s-attest-admin" (include "confkube.fullname" .)) .Values.attestation.adminTokenSecret -}}
{{- end -}}

{{- define "confkube.attest.issuer" -}}
{{- if .Values.attestation.issuer -}}
{{ .Values.attestation.issuer }}
{{- else if .Values.attestation.ingress.enabled -}}
https://{{ .Values.attestation.ingress.host }}
{{- else -}}
https://{{ include "confkube.attest.name" . }}.{{ .Release.Namespace }}.svc{{ if ne (int .Values.attestation.service.port) 443 }}:{{ .Values.attestation.service.port }}{{ end }}
{{- end -}}
{{- end -}}

{{/* Checks that stop a render with a message naming the value to fix. */}}
{{- define "confkube.validate" -}}
{{- $a := .Values.attestation -}}
{{- if and $a.enabled (gt (int $a.replicas) 1) (not $a.signingKeys.existingSecret) -}}
{{- fail "attestation.replicas > 1 needs attestation.signingKeys.existingSecret: stateless replicas must share their signing keys (create one with `confkube attest keygen`, see docs/operations.md)" -}}
{{- end -}}
{{- if and $a.enabled (lt (int $a.replicas) 1) -}}
{{- fail "attestation.replicas must be at least 1 (set attestation.enabled=false to remove the service)" -}}
{{- end -}}
{{- if and .Values.webhook.enabled (lt (int .Values.webhook.replicas) 1) -}}
{{- fail "webhook.replicas must be at least 1 (set webhook.enabled=false to remove the webhook)" -}}
{{- end -}}
{{- if and $a.enabled (ne (not $a.secrets.existingSecret) (not $a.secrets.policyConfigMap)) -}}
{{- fail "attestation.secrets.existingSecret and attestation.secrets.policyConfigMap go together: the Secret holds the values, the ConfigMap their release policies (docs/attestation.md#secret-release)" -}}
{{- end -}}
{{- if and $a.enabled $a.secrets.existingSecret $a.secrets.kekSecret -}}
{{- fail "attestation.secrets.kekSecret seals secrets kept in the store; with attestation.secrets.existingSecret they come from that Secret: set one of them" -}}
{{- end -}}
{{- if and $a.enabled $a.ingress.enabled (not $a.ingress.host) -}}
{{- fail "attestation.ingress.enabled needs attestation.ingress.host" -}}
{{- end -}}
{{- end -}}

{{/* Spread replicas of a component over nodes, then zones: (dict "ctx" $ "component" "webhook").
Preferred, not required, so that a rolling update (maxSurge 1) still fits on a two-node cluster. */}}
{{- define "confkube.antiAffinity" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "confkube.selectorLabels" . | nindent 12 }}
    - weight: 50
      podAffinityTerm:
        topologyKey: topology.kubernetes.io/zone
        labelSelector:
          matchLabels:
            {{- include "confkube.selectorLabels" . | nindent 12 }}
{{- end -}}
