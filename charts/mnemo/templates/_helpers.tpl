{{/*
Name of the chart, or nameOverride.
*/}}
{{- define "mnemo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name: release-chart, truncated to the 63 characters of a DNS label.
*/}}
{{- define "mnemo.fullname" -}}
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

{{- define "mnemo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mnemo.labels" -}}
helm.sh/chart: {{ include "mnemo.chart" . }}
{{ include "mnemo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: proxy
app.kubernetes.io/part-of: mnemo
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "mnemo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mnemo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mnemo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mnemo.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mnemo.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Secret holding the Redis connection string and the admin token when the chart creates it.
*/}}
{{- define "mnemo.secretName" -}}
{{- include "mnemo.fullname" . }}
{{- end }}

{{/*
Whether a Redis connection string is configured (inline or from an existing secret).
*/}}
{{- define "mnemo.redisConfigured" -}}
{{- if or .Values.redis.connectionString .Values.redis.existingSecret }}true{{ end }}
{{- end }}

{{- define "mnemo.adminConfigured" -}}
{{- if or .Values.admin.token .Values.admin.existingSecret }}true{{ end }}
{{- end }}

{{- define "mnemo.summaryKeyConfigured" -}}
{{- if or .Values.summary.apiKey .Values.summary.existingSecret }}true{{ end }}
{{- end }}

{{/*
Grace period: the preStop pause, then Mnemo's own shutdown (in-flight streams, write-back drain), then a margin.
*/}}
{{- define "mnemo.terminationGracePeriodSeconds" -}}
{{- if .Values.terminationGracePeriodSeconds }}
{{- .Values.terminationGracePeriodSeconds }}
{{- else }}
{{- add .Values.lifecycle.preStopSleepSeconds .Values.config.shutdownTimeoutSeconds 5 }}
{{- end }}
{{- end }}

{{/*
Refuse shapes that would lose or split history.
*/}}
{{- define "mnemo.validate" -}}
{{- if not (include "mnemo.redisConfigured" .) }}
{{- if and .Values.standalone.enabled (or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled) }}
{{- fail "Without redis.connectionString or redis.existingSecret, Mnemo keeps history in each pod's memory: with more than one replica (or autoscaling) every pod would see a different history. Configure Redis, or set replicaCount: 1 and autoscaling.enabled: false." }}
{{- end }}
{{- end }}
{{- if and .Values.terminationGracePeriodSeconds (lt (int .Values.terminationGracePeriodSeconds) (add .Values.lifecycle.preStopSleepSeconds .Values.config.shutdownTimeoutSeconds)) }}
{{- fail "terminationGracePeriodSeconds must be at least lifecycle.preStopSleepSeconds + config.shutdownTimeoutSeconds, or the kubelet kills Mnemo before in-flight streams finish and queued turns are written." }}
{{- end }}
{{- end }}
