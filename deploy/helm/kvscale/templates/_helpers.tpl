{{/* Names, labels and the image, shared by every object. */}}
{{- define "kvscale.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kvscale.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "kvscale.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "kvscale.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object; the component's name is in app.kubernetes.io/name so the default
     alert selectors (job="kvscale-exporter") and the adapter's exporter discovery match. */}}
{{- define "kvscale.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: kvscale
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "kvscale.selectorLabels" . }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "kvscale.selectorLabels" -}}
app.kubernetes.io/name: kvscale-{{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "kvscale.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{- define "kvscale.exporter.fullname" -}}{{ include "kvscale.fullname" . | trunc 54 | trimSuffix "-" }}-exporter{{- end -}}
{{- define "kvscale.adapter.fullname" -}}{{ include "kvscale.fullname" . | trunc 55 | trimSuffix "-" }}-adapter{{- end -}}
{{- define "kvscale.adapter.certSecret" -}}{{ include "kvscale.adapter.fullname" . }}-serving-cert{{- end -}}
{{- define "kvscale.policy.configMap" -}}{{ include "kvscale.fullname" . | trunc 56 | trimSuffix "-" }}-policy{{- end -}}

{{/* The container security context every kvscale container starts from. */}}
{{- define "kvscale.securityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Where the policy file is mounted; KVSCALE_POLICY points every command at it. */}}
{{- define "kvscale.policy.path" -}}/etc/kvscale/policy.yaml{{- end -}}
{{- define "kvscale.policy.volume" -}}
- name: policy
  configMap:
    name: {{ include "kvscale.policy.configMap" . }}
{{- end -}}
