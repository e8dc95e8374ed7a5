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
it (maps key by key, anything else replaced), then web.external_url from .Values.externalUrl
and, with .Values.kafka.enabled, the kafka section from .Values.kafka (camelCase values become
the configuration's snake_case keys; librdkafka only when it has properties).
*/}}
{{- define "traceslo.config" -}}
{{- $base := fromYaml (.Files.Get "files/traceslo.yaml") -}}
{{- $chartOwned := dict "web" (dict "external_url" .Values.externalUrl) -}}
{{- if .Values.kafka.enabled -}}
{{- $kafka := dict "enabled" true "brokers" .Values.kafka.brokers "encoding" .Values.kafka.encoding -}}
{{- $_ := set $kafka "topics" (dict "spans" .Values.kafka.topics.spans "deltas" .Values.kafka.topics.deltas "state" .Values.kafka.topics.state) -}}
{{- $_ = set $kafka "group_ids" (dict "stage1" .Values.kafka.groupIds.stage1 "stage2" .Values.kafka.groupIds.stage2) -}}
{{- $_ = set $kafka "epoch_length" .Values.kafka.epochLength -}}
{{- $_ = set $kafka "commit_interval" .Values.kafka.commitInterval -}}
{{- $_ = set $kafka "idle_partition_timeout" .Values.kafka.idlePartitionTimeout -}}
{{- $_ = set $kafka "allowed_lateness" .Values.kafka.allowedLateness -}}
{{- $_ = set $kafka "snapshot_interval" .Values.kafka.snapshotInterval -}}
{{- if .Values.kafka.librdkafka -}}
{{- $_ = set $kafka "librdkafka" .Values.kafka.librdkafka -}}
{{- end -}}
{{- $_ = set $chartOwned "kafka" $kafka -}}
{{- end -}}
{{- $config := mergeOverwrite $base (deepCopy .Values.config) $chartOwned -}}
{{- toYaml $config -}}
{{- end -}}
