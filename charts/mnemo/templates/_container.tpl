{{/*
The Mnemo container, shared by the standalone Deployment and by the sidecar templates other charts include.
Context: the Mnemo chart's (for a parent chart: .Subcharts.mnemo).
*/}}
{{- define "mnemo.container" -}}
name: {{ .Values.containerName | default "mnemo" }}
image: {{ include "mnemo.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
ports:
  - name: proxy
    containerPort: {{ .Values.service.port }}
    protocol: TCP
  - name: management
    containerPort: {{ .Values.service.managementPort }}
    protocol: TCP
envFrom:
  - configMapRef:
      name: {{ include "mnemo.fullname" . }}
{{- if or (include "mnemo.redisConfigured" .) (include "mnemo.adminConfigured" .) (include "mnemo.summaryKeyConfigured" .) .Values.extraEnv }}
env:
  {{- if include "mnemo.redisConfigured" . }}
  - name: ConnectionStrings__Redis
    valueFrom:
      secretKeyRef:
        name: {{ .Values.redis.existingSecret | default (include "mnemo.secretName" .) }}
        key: {{ .Values.redis.existingSecretKey }}
  {{- end }}
  {{- if include "mnemo.adminConfigured" . }}
  - name: Mnemo__Admin__Token
    valueFrom:
      secretKeyRef:
        name: {{ .Values.admin.existingSecret | default (include "mnemo.secretName" .) }}
        key: {{ .Values.admin.existingSecretKey }}
  {{- end }}
  {{- if include "mnemo.summaryKeyConfigured" . }}
  - name: Mnemo__Summary__ApiKey
    valueFrom:
      secretKeyRef:
        name: {{ .Values.summary.existingSecret | default (include "mnemo.secretName" .) }}
        key: {{ .Values.summary.existingSecretKey }}
  {{- end }}
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- with .Values.startupProbe }}
startupProbe:
  httpGet:
    path: /healthz/live
    port: management
  {{- toYaml . | nindent 2 }}
{{- end }}
livenessProbe:
  httpGet:
    path: /healthz/live
    port: management
  {{- toYaml .Values.livenessProbe | nindent 2 }}
readinessProbe:
  httpGet:
    path: /healthz/ready
    port: management
  {{- toYaml .Values.readinessProbe | nindent 2 }}
{{- if gt (int .Values.lifecycle.preStopSleepSeconds) 0 }}
{{- /* Keep serving while endpoint controllers and load balancers drop the pod; the image has no shell to sleep with,
hence the kubelet's own sleep action. */}}
lifecycle:
  preStop:
    sleep:
      seconds: {{ .Values.lifecycle.preStopSleepSeconds }}
{{- end }}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: {{ .Values.containerName | default "mnemo" }}-tmp
    mountPath: /tmp
{{- end }}

{{- define "mnemo.volumes" -}}
- name: {{ .Values.containerName | default "mnemo" }}-tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}
