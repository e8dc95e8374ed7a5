{{/* The chart name, or nameOverride. */}}
{{- define "traceslo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource names: fullnameOverride, else <release>-<name> (just <release> when it contains the name). */}}
{{- define "traceslo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The helm.sh/chart label value. */}}
{{- define "traceslo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "traceslo.labels" -}}
helm.sh/chart: {{ include "traceslo.chart" . }}
{{ include "traceslo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels the Services and the StatefulSet select pods by; never change them (immutable). */}}
{{- define "traceslo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "traceslo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The container image: repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "traceslo.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
traceslo.yaml as the container reads it: files/traceslo.yaml, then .Values.config merged over
it (maps key by key, anything else replaced), then web.external_url from .Values.externalUrl.
*/}}
{{- define "traceslo.config" -}}
{{- $base := fromYaml (.Files.Get "files/traceslo.yaml") -}}
{{- $chartOwned := dict "web" (dict "external_url" .Values.externalUrl) -}}
{{- $config := mergeOverwrite $base (deepCopy .Values.config) $chartOwned -}}
{{- toYaml $config -}}
{{- end -}}
